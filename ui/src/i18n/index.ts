import { createI18n } from 'vue-i18n'
import en from './en'
import ru from './ru'

export type Lang = 'ru' | 'en'
export const LANGS: Lang[] = ['ru', 'en']
const KEY = 'callcard.lang'

/** The saved choice, else Russian when the browser prefers it, else English. */
export function initialLang(
  saved: string | null = localStorage.getItem(KEY),
  preferred: readonly string[] = navigator.languages ?? [navigator.language],
): Lang {
  if (saved === 'ru' || saved === 'en') return saved
  for (const l of preferred) {
    const base = l.toLowerCase().split('-')[0]
    if (base === 'ru' || base === 'en') return base
  }
  return 'en'
}

export const i18n = createI18n({
  legacy: false,
  locale: initialLang(),
  fallbackLocale: 'en',
  messages: { ru, en },
})

export function setLang(lang: Lang): void {
  i18n.global.locale.value = lang
  localStorage.setItem(KEY, lang)
  document.documentElement.lang = lang
}
