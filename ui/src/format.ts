import { i18n } from './i18n'

// A number never wraps in the middle: no-break spaces and no-break hyphens.
const NBSP = '\u00a0'
const NBHY = '\u2011'

/** +79161234567 → +7 916 123-45-67 (Russian numbers); others as stored. */
export function phone(e164: string | null | undefined): string {
  if (!e164) return ''
  const m = /^\+7(\d{3})(\d{3})(\d{2})(\d{2})$/.exec(e164)
  return m ? ['+7', m[1], [m[2], m[3], m[4]].join(NBHY)].join(NBSP) : e164
}

export function duration(seconds: number | null | undefined): string {
  const s = Math.max(0, Math.floor(seconds ?? 0))
  const h = Math.floor(s / 3600)
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0')
  const ss = String(s % 60).padStart(2, '0')
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`
}

export function dateTime(iso: string | null | undefined): string {
  if (!iso) return ''
  return new Date(iso)
    .toLocaleString(i18n.global.locale.value === 'ru' ? 'ru-RU' : 'en-GB', {
      day: '2-digit', month: 'short', hour: '2-digit', minute: '2-digit',
    })
    .replace(/ /g, NBSP) // "02 дек., 09:45" stays on one line
}

export function money(v: unknown): string {
  const n = typeof v === 'number' ? v : Number(v)
  if (!Number.isFinite(n)) return ''
  return n.toLocaleString(i18n.global.locale.value === 'ru' ? 'ru-RU' : 'en-GB', { maximumFractionDigits: 0 })
}

/** A title for records whose exact shape belongs to another part of the API. */
export function title(item: Record<string, unknown>): string {
  for (const k of ['title', 'name', 'subject', 'body']) if (typeof item[k] === 'string') return item[k] as string
  return `#${String(item.id ?? '')}`
}

/** A status word from the API in the current language (as is when it is unknown). */
export function statusLabel(status: string | null | undefined): string {
  if (!status) return ''
  const key = `status2.${status}`
  return i18n.global.te(key) ? i18n.global.t(key) : status
}
