// The one HTTP client, typed by path from the OpenAPI snapshot (src/api/schema.d.ts,
// `npm run gen:api`): `api.get('/clients/{client_id}/card', { path: { client_id } })`
// knows its parameters, body and answer.
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

export const API = '/api/v1'

/** An answer the API refused: `{"error": {"code", "message", "details"}}` from crm_api.platform.errors. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message)
  }
}

type Scalar = string | number | boolean | null | undefined
type Query = Record<string, Scalar | Scalar[]>

export function withQuery(path: string, query?: Query): string {
  const params = new URLSearchParams()
  for (const [k, v] of Object.entries(query ?? {})) {
    for (const one of Array.isArray(v) ? v : [v]) {
      if (one !== null && one !== undefined && one !== '') params.append(k, String(one))
    }
  }
  const qs = params.toString()
  return qs ? `${path}?${qs}` : path
}

// ---- types derived from the OpenAPI document
type Method = 'get' | 'post' | 'put' | 'patch' | 'delete'
type Route<K> = K extends `${typeof API}${infer R}` ? R : never
/** The operations of one method, keyed by their path under /api/v1. */
type Ops<M extends Method> = {
  [K in keyof paths as [NonNullable<paths[K][M]>] extends [never] ? never : Route<K>]: NonNullable<paths[K][M]>
}
type Op<M extends Method, R> = R extends string
  ? `${typeof API}${R}` extends infer K extends keyof paths ? NonNullable<paths[K][M]> : never
  : never
type Json<R> = R extends { content: { 'application/json': infer J } } ? J : undefined
type Answer<O> = O extends { responses: infer R }
  ? 200 extends keyof R ? Json<R[200]>
    : 201 extends keyof R ? Json<R[201]>
      : 202 extends keyof R ? Json<R[202]>
        : undefined
  : never
type PathParams<O> = O extends { parameters: { path: infer P } } ? P : never
type QueryParams<O> = O extends { parameters: { query?: infer Q } } ? Q : never
type Body<O> = O extends { requestBody?: { content: { 'application/json': infer B } } } ? B : never
type Options<O> = ([PathParams<O>] extends [never] ? { path?: never } : { path: PathParams<O> }) & {
  query?: QueryParams<O>
  body?: Body<O>
  form?: FormData
  headers?: Record<string, string>
}
type Args<O> = [PathParams<O>] extends [never] ? [opts?: Options<O>] : [opts: Options<O>]
/** What a route answers, e.g. `Answer<'get', '/deals/board'>`. */
export type ApiAnswer<M extends Method, R extends keyof Ops<M>> = Answer<Op<M, R>>

function fill(route: string, params: Record<string, unknown> | undefined): string {
  return route.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(String(params?.[name])))
}

async function send<T>(method: string, route: string, opts: {
  path?: Record<string, unknown>; query?: unknown; body?: unknown; form?: FormData; headers?: Record<string, string>
} = {}): Promise<T> {
  const init: RequestInit = { method, credentials: 'same-origin', headers: { ...opts.headers } }
  if (opts.form) init.body = opts.form
  else if (opts.body !== undefined) {
    init.body = JSON.stringify(opts.body)
    ;(init.headers as Record<string, string>)['Content-Type'] = 'application/json'
  }
  let res: Response
  try {
    res = await fetch(API + withQuery(fill(route, opts.path), opts.query as Query), init)
  } catch (e) {
    throw new ApiError(0, 'network', String(e))
  }
  if (res.status === 204) return undefined as T
  const text = await res.text()
  const data: unknown = text ? safeJson(text) : undefined
  if (!res.ok) {
    const err = (data as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | undefined)?.error
    if (res.status === 401) onUnauthorized?.()
    // No code (a proxy's page, an unhandled server error): the status says what kind it was.
    const code = err?.code ?? (res.status >= 500 ? 'server_error' : `http_${res.status}`)
    throw new ApiError(res.status, code, err?.message ?? res.statusText, err?.details ?? {})
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

function method<M extends Method>(m: M) {
  return <R extends keyof Ops<M> & string>(route: R, ...[opts]: Args<Op<M, R>>): Promise<Answer<Op<M, R>>> =>
    send(m.toUpperCase(), route, opts as Parameters<typeof send>[2])
}

export const api = {
  get: method('get'),
  post: method('post'),
  put: method('put'),
  patch: method('patch'),
  delete: method('delete'),
}

/** A URL for the browser itself to open (a download, an audio source). */
export function href<R extends keyof Ops<'get'> & string>(route: R, ...[opts]: Args<Op<'get', R>>): string {
  const o = opts as { path?: Record<string, unknown>; query?: unknown } | undefined
  return API + withQuery(fill(route, o?.path), o?.query as Query)
}

/** A fresh Idempotency-Key. `crypto.randomUUID` exists only in secure contexts (https or
 * localhost); a LAN install on plain http still has `getRandomValues`. */
export function idempotencyKey(): string {
  const b = crypto.getRandomValues(new Uint8Array(16))
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')
}
