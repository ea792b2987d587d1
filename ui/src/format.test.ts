import { describe, expect, it } from 'vitest'
import { duration, phone, title } from './format'

describe('format', () => {
  it('groups Russian numbers and leaves others alone', () => {
    expect(phone('+79161234567')).toBe('+7\u00a0916\u00a0123\u201145\u201167')
    expect(phone('+4930123456')).toBe('+4930123456')
    expect(phone(null)).toBe('')
  })
  it('formats durations as mm:ss and h:mm:ss', () => {
    expect(duration(0)).toBe('00:00')
    expect(duration(75.9)).toBe('01:15')
    expect(duration(3723)).toBe('1:02:03')
    expect(duration(-4)).toBe('00:00')
  })
  it('titles records of unknown shape', () => {
    expect(title({ id: 3, title: 'Deal' })).toBe('Deal')
    expect(title({ id: 3 })).toBe('#3')
  })
})
