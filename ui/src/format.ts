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

/** The Intl locale of the interface language: dates, times and numbers follow it. */
export function locale(): string {
  return i18n.global.locale.value === 'ru' ? 'ru-RU' : 'en-GB'
}

// Intl formatters are costly to build: one per locale and shape.
const formatters = new Map<string, Intl.DateTimeFormat | Intl.NumberFormat>()
function dates(key: string, options: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  const k = `d:${locale()}:${key}`
  if (!formatters.has(k)) formatters.set(k, new Intl.DateTimeFormat(locale(), options))
  return formatters.get(k) as Intl.DateTimeFormat
}
function numbers(digits: number): Intl.NumberFormat {
  const k = `n:${locale()}:${digits}`
  if (!formatters.has(k)) formatters.set(k, new Intl.NumberFormat(locale(), { minimumFractionDigits: 0, maximumFractionDigits: digits }))
  return formatters.get(k) as Intl.NumberFormat
}

export function dateTime(iso: string | null | undefined): string {
  if (!iso) return ''
  return dates('dateTime', { day: '2-digit', month: 'short', hour: '2-digit', minute: '2-digit' })
    .format(new Date(iso))
    .replace(/ /g, NBSP) // "02 дек., 09:45" stays on one line
}

/** What a date picker shows (date-fns tokens) in the interface language: 02.12.2026 in
 * Russian, 02/12/2026 in English, with the time when it picks one. */
export function pickerFormat(withTime = false): string {
  const day = i18n.global.locale.value === 'ru' ? 'dd.MM.yyyy' : 'dd/MM/yyyy'
  return withTime ? `${day} HH:mm` : day
}

/** A calendar day (an ISO date or a moment): 02.12.2026 in Russian, 02/12/2026 in English. */
export function date(iso: string | null | undefined): string {
  if (!iso) return ''
  // A bare date is that day wherever the browser is, not UTC midnight.
  const d = /^\d{4}-\d{2}-\d{2}$/.test(iso) ? new Date(`${iso}T00:00:00`) : new Date(iso)
  return dates('date', { day: '2-digit', month: '2-digit', year: 'numeric' }).format(d)
}

/** A moment with its year, for what may be months away: 02.12.2026, 09:45 / 02/12/2026, 09:45. */
export function fullDateTime(iso: string | null | undefined): string {
  if (!iso) return ''
  const shape: Intl.DateTimeFormatOptions = { day: '2-digit', month: '2-digit', year: 'numeric', hour: '2-digit', minute: '2-digit' }
  return dates('fullDateTime', shape).format(new Date(iso))
}

/** A number with up to `digits` decimals in the interface language: 3,8 in Russian. */
export function decimal(v: unknown, digits = 1): string {
  const n = typeof v === 'number' ? v : Number(v)
  return v === null || v === undefined || v === '' || !Number.isFinite(n) ? '' : numbers(digits).format(n)
}

/** The mean of some scores, to a tenth ('' when there are none). */
export function average(values: number[]): string {
  return values.length ? decimal(values.reduce((a, b) => a + b, 0) / values.length) : ''
}

export function money(v: unknown): string {
  return decimal(v, 0)
}

/** A title for records whose exact shape belongs to another part of the API. */
export function title(item: Record<string, unknown>): string {
  for (const k of ['title', 'name', 'subject', 'body']) if (typeof item[k] === 'string') return item[k] as string
  return `#${String(item.id ?? '')}`
}

/** What a task says: one the system made (a kind with parameters) in the current
 * language, any other by its title. */
export function taskText(task: Record<string, unknown>): string {
  const title = typeof task.title === 'string' ? task.title : ''
  const p = (task.params ?? {}) as Record<string, unknown>
  if (task.kind === 'missed_call') {
    const count = Number(p.count ?? 1)
    // The title is the client's name, or the number for a card without one.
    return i18n.global.t(count > 1 ? 'tasks.kinds.missedCalls' : 'tasks.kinds.missedCall', { who: phone(title), count })
  }
  if (task.kind === 'stale_deal') {
    return i18n.global.t('tasks.kinds.staleDeal', { deal: String(p.deal ?? title), days: Number(p.days ?? 0) })
  }
  return title
}

/** A status word from the API in the current language (as is when it is unknown). */
export function statusLabel(status: string | null | undefined): string {
  if (!status) return ''
  const key = `status2.${status}`
  return i18n.global.te(key) ? i18n.global.t(key) : status
}

/** The kinds of phone the app names in the user's language; any other label is the user's
 * own words, shown as typed. */
export const PHONE_KINDS = ['mobile', 'work', 'home'] as const

export function phoneLabel(label: string | null | undefined): string {
  if (!label) return ''
  return (PHONE_KINDS as readonly string[]).includes(label) ? i18n.global.t(`card.phoneKinds.${label}`) : label
}
