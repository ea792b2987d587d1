import { describe, expect, it } from 'vitest'
import { naiveLocale } from './naive'

// Every word naive-ui shows: strings only (formats are not words), not the theme editor
// (a developer's tool the app never shows).
function words(locale: object): string[] {
  const walk = (o: object, path: string): string[] => Object.entries(o).flatMap(([k, v]) => {
    if (k === 'name' || k === 'ThemeEditor' || k.endsWith('Format')) return []
    if (typeof v === 'string') return v ? [`${path}${k}: ${v}`] : []
    return v && typeof v === 'object' ? walk(v, `${path}${k}.`) : []
  })
  return walk(locale, '')
}

describe('naive-ui locale', () => {
  it('speaks Russian in Russian', () => {
    // The Esc key keeps its name.
    const latin = words(naiveLocale('ru')).filter((w) => /[A-Za-z]/.test(w.split(': ')[1].replace('(Esc)', '')))
    expect(latin).toEqual([])
  })
  it('writes English in sentence case', () => {
    // A capital after the first word only for a key name (Esc) or OK.
    const titled = words(naiveLocale('en')).filter((w) => w.split(': ')[1].split(/\s+/).slice(1).some((x) => /^\(?[A-Z][a-z]/.test(x) && !/Esc/.test(x)))
    expect(titled).toEqual([])
    expect(naiveLocale('en').DatePicker.startDatePlaceholder).toBe('Start date')
  })
})
