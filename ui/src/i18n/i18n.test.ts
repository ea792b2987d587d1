import { describe, expect, it } from 'vitest'
import { initialLang } from '.'
import en from './en'
import ru from './ru'

describe('language', () => {
  it('follows the saved choice, then the browser, else English', () => {
    expect(initialLang('en', ['ru-RU'])).toBe('en')
    expect(initialLang(null, ['ru-RU', 'en-US'])).toBe('ru')
    expect(initialLang(null, ['de-DE', 'en-GB'])).toBe('en')
    expect(initialLang(null, ['de-DE'])).toBe('en')
    expect(initialLang('xx', ['ru'])).toBe('ru')
  })

  it('has every English key in Russian too', () => {
    const keys = (o: object, p = ''): string[] =>
      Object.entries(o).flatMap(([k, v]) => (typeof v === 'object' ? keys(v, `${p}${k}.`) : [`${p}${k}`]))
    expect(keys(ru).sort()).toEqual(keys(en).sort())
  })
})
