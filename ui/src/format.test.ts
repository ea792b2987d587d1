import { describe, expect, it } from 'vitest'
import { date, dateTime, decimal, duration, money, phone, phoneLabel, taskText, title } from './format'
import { setLang } from './i18n'

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
  it('writes dates and numbers as the interface language does', () => {
    setLang('ru')
    expect(date('2026-12-02')).toBe('02.12.2026')
    expect(decimal(3.8)).toBe('3,8')
    expect(money(1234567)).toBe('1\u00a0234\u00a0567')
    expect(dateTime('2026-12-02T06:45:00Z')).toMatch(/^02\u00a0дек\.,?\u00a0\d\d:45$/)
    setLang('en')
    expect(date('2026-12-02')).toBe('02/12/2026')
    expect(decimal(3.8)).toBe('3.8')
    expect(money(1234567)).toBe('1,234,567')
    expect(decimal(null)).toBe('')
  })
  it('words the tasks the system made in the interface language', () => {
    setLang('ru')
    expect(taskText({ title: 'Иванов Иван', kind: 'missed_call', params: { count: 3 } })).toBe('Перезвонить: Иванов Иван — пропущено звонков: 3')
    expect(taskText({ title: '+79161234567', kind: 'missed_call', params: { count: 1 } })).toBe('Перезвонить: +7\u00a0916\u00a0123\u201145\u201167 — пропущенный звонок')
    setLang('en')
    expect(taskText({ title: 'Поставка', kind: 'stale_deal', params: { deal: 'Поставка', days: 7 } })).toBe('Deal idle for 7 days: Поставка')
    expect(taskText({ title: 'Позвонить' })).toBe('Позвонить')
  })
  it('titles records of unknown shape', () => {
    expect(title({ id: 3, title: 'Deal' })).toBe('Deal')
    expect(title({ id: 3 })).toBe('#3')
  })
  it('names the kinds of phone in the interface language, other labels as typed', () => {
    setLang('en')
    expect(phoneLabel('mobile')).toBe('mobile')
    expect(phoneLabel('Секретарь')).toBe('Секретарь')
    expect(phoneLabel(null)).toBe('')
    setLang('ru')
    expect(phoneLabel('mobile')).toBe('мобильный')
    expect(phoneLabel('work')).toBe('рабочий')
  })
})
