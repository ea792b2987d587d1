import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api } from '../api/client'
import { realtime, type Frame } from '../realtime/socket'
import { useSession } from './session'

/** One row per client (or per unknown number): how many calls were missed, the last one,
 * and the open callback tasks they became. */
export interface MissedRow {
  key: string
  client_id: number | null
  name: string | null
  phone: string | null
  count: number
  at: string
  task_ids: number[]
}

interface Missed {
  client_id: number | null
  phone: string | null
  at: string
  task_id?: number
  call_id?: string
}

/** The missed calls this user should call back, from the API: their open callback tasks
 * (and, for supervisors, the latest missed calls), kept live by `call.missed` frames. */
export const useMissed = defineStore('missed', () => {
  const items = ref<Missed[]>([])
  const names = ref<Record<number, { name: string; phone: string | null }>>({})

  async function hydrate(): Promise<void> {
    const session = useSession()
    const me = session.user
    if (!me) return
    const [tasks, calls] = await Promise.all([
      api.get('/tasks', { query: { assignee_id: me.id, open_only: true, page_size: 200 } }).catch(() => null),
      session.isStaff
        ? api.get('/calls', { query: { disposition: 'missed', page_size: 20 } }).catch(() => null)
        : null,
    ])
    const found: Missed[] = []
    for (const task of tasks?.items ?? []) {
      if (task.source === 'missed_call') found.push({ client_id: task.client_id, phone: null, at: task.created_at, task_id: task.id })
    }
    for (const c of calls?.items ?? []) found.push({ client_id: c.client_id, phone: c.caller, at: c.started_at, call_id: c.call_id ?? String(c.id) })
    items.value = found
    await loadNames(found)
  }
  function dehydrate(): void {
    items.value = []
  }

  // Names and numbers of the clients in the list, one request per client (a short list).
  async function loadNames(list: Missed[]): Promise<void> {
    const ids = [...new Set(list.map((m) => m.client_id).filter((x): x is number => x !== null))]
      .filter((id) => !(id in names.value)).slice(0, 30)
    const got = await Promise.all(ids.map((id) => api.get('/clients/{client_id}', { path: { client_id: id } }).catch(() => null)))
    const next = { ...names.value }
    for (const c of got) if (c) next[c.id] = { name: c.name, phone: c.phones[0]?.e164 ?? null }
    names.value = next
  }

  function onMissed(frame: Frame): void {
    const d = frame.data as { call_id?: string; client_id?: number | null; caller?: string | null; ended_at?: string; started_at?: string }
    if (items.value.some((m) => m.call_id && m.call_id === d.call_id)) return
    items.value = [
      { client_id: d.client_id ?? null, phone: d.caller ?? null, at: d.ended_at ?? d.started_at ?? new Date().toISOString(), call_id: d.call_id },
      ...items.value,
    ]
    void hydrate() // the callback task it became (committed before the frame)
  }
  realtime.on('call.missed', onMissed)
  realtime.on('reconnected', () => void hydrate())

  /** The rows: a client's missed calls together, newest first. A frame and the task it
   * became are the same missed call: the task counts, the frame only until it is there. */
  const rows = computed<MissedRow[]>(() => {
    const byKey = new Map<string, MissedRow>()
    const tasksOf = new Set(items.value.filter((m) => m.task_id).map((m) => m.client_id))
    for (const m of items.value) {
      if (!m.task_id && m.client_id !== null && tasksOf.has(m.client_id)) continue
      const key = m.client_id !== null ? `c${m.client_id}` : `n${m.phone ?? ''}`
      const known = m.client_id !== null ? names.value[m.client_id] : undefined
      const row = byKey.get(key) ?? {
        key, client_id: m.client_id, name: known?.name ?? null, phone: m.phone ?? known?.phone ?? null,
        count: 0, at: m.at, task_ids: [],
      }
      row.count += 1
      if (m.at > row.at) row.at = m.at
      if (m.task_id) row.task_ids.push(m.task_id)
      byKey.set(key, row)
    }
    return [...byKey.values()].sort((a, b) => b.at.localeCompare(a.at))
  })

  return { rows, hydrate, dehydrate }
})
