// The one HTTP client: typed by the OpenAPI snapshot (src/api/schema.d.ts, `npm run gen:api`).
import type { components, paths } from './schema'

export type Schemas = components['schemas']
export type User = Schemas['UserPublic']
export type Role = Schemas['Role']
export type ClientSummary = Schemas['ClientSummary']
export type ClientPublic = Schemas['ClientPublic']
export type ClientCard = Schemas['ClientCard']
export type ClientFilters = Schemas['ClientFilters']
export type Communication = Schemas['CommunicationPublic']
export type CallPublic = Schemas['CallPublic']
export type SavedView = Schemas['SavedViewPublic']
export type DirectoryItem = Schemas['DirectoryItem']
export type AuditEntry = Schemas['AuditEntryPublic']
export type ImportJob = Schemas['ImportJobPublic']
export type Deal = Schemas['DealPublic']
export type Task = Schemas['TaskPublic']
export type Stage = Schemas['StagePublic']
export type BoardColumn = Schemas['BoardColumn']
export type Message = Schemas['MessagePublic']
export type Page<T> = { items: T[]; total: number; page: number; page_size: number }
export type ApiPath = keyof paths

export const API = '/api/v1'

/** An answer the API refused: `{"error": {"code", "message"}}` from crm_api.platform.errors. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

type Query = Record<string, string | number | boolean | null | undefined>

export function withQuery(path: string, query?: Query): string {
  const params = new URLSearchParams()
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== null && v !== undefined && v !== '') params.set(k, String(v))
  }
  const qs = params.toString()
  return qs ? `${path}?${qs}` : path
}

export async function request<T>(
  method: string,
  path: string,
  opts: { query?: Query; body?: unknown; form?: FormData; headers?: Record<string, string> } = {},
): Promise<T> {
  const init: RequestInit = { method, credentials: 'same-origin', headers: { ...opts.headers } }
  if (opts.form) init.body = opts.form
  else if (opts.body !== undefined) {
    init.body = JSON.stringify(opts.body)
    ;(init.headers as Record<string, string>)['Content-Type'] = 'application/json'
  }
  let res: Response
  try {
    res = await fetch(API + withQuery(path, opts.query), init)
  } catch (e) {
    throw new ApiError(0, 'network', String(e))
  }
  if (res.status === 204) return undefined as T
  const text = await res.text()
  const data: unknown = text ? safeJson(text) : undefined
  if (!res.ok) {
    const err = (data as { error?: { code?: string; message?: string } } | undefined)?.error
    const detail = (data as { detail?: { msg?: string }[] } | undefined)?.detail
    const message =
      err?.message ?? (Array.isArray(detail) ? detail.map((d) => d.msg).join('; ') : res.statusText)
    if (res.status === 401) onUnauthorized?.()
    throw new ApiError(res.status, err?.code ?? String(res.status), message)
  }
  return data as T
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

let onUnauthorized: (() => void) | undefined
export function setUnauthorizedHandler(fn: () => void): void {
  onUnauthorized = fn
}

export const get = <T>(path: string, query?: Query) => request<T>('GET', path, { query })
export const post = <T>(path: string, body?: unknown) => request<T>('POST', path, { body })
export const put = <T>(path: string, body?: unknown) => request<T>('PUT', path, { body })
export const patch = <T>(path: string, body?: unknown) => request<T>('PATCH', path, { body })
export const del = <T>(path: string) => request<T>('DELETE', path)

// Endpoints other parts of the backend add over time: pages ask before calling them and
// show an empty state when the running API does not offer them.
let available: Promise<Set<string>> | null = null
export function endpoints(): Promise<Set<string>> {
  available ??= fetch(API + '/openapi.json')
    .then((r) => (r.ok ? r.json() : { paths: {} }))
    .then((doc: { paths?: Record<string, Record<string, unknown>> }) => {
      const out = new Set<string>()
      for (const [p, ops] of Object.entries(doc.paths ?? {}))
        for (const m of Object.keys(ops)) out.add(`${m.toUpperCase()} ${p.replace(API, '')}`)
      return out
    })
    .catch(() => new Set<string>())
  return available
}
export async function hasEndpoint(method: string, path: string): Promise<boolean> {
  return (await endpoints()).has(`${method.toUpperCase()} ${path}`)
}
