import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api } from '../api/client'
import { realtime, type FrameOf } from '../realtime/socket'
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
  id: number // the call's row: two PBXs may give their calls one id
  client_id: number | null
  name: string | null
  phone: string | null
  at: string
  task_id: number | null
  covered: number // unanswered calls the callback task covers
}

/** The team's missed calls still to be called back, from `GET /calls/missed` (each with
 * its callback task), kept live by `call.missed` frames. */
export const useMissed = defineStore('missed', () => {
  const items = ref<Missed[]>([])

  async function hydrate(): Promise<void> {
    if (!useSession().user) return
    const page = await api.get('/calls/missed', { query: { page_size: 200 } }).catch(() => null)
    if (!page) return
    const found = page.items.map((m): Missed => ({
      id: m.call.id,
      client_id: m.call.client_id,
      name: m.client_name,
      phone: m.call.caller,
      at: m.call.ended_at ?? m.call.started_at,
      task_id: m.callback?.task_id ?? null,
      covered: m.callback?.count ?? 1,
    }))
    // A frame newer than this answer stays until the next answer lists its call.
    const listed = new Set(found.map((m) => m.id))
    const newer = items.value.filter((m) => m.task_id === null && !listed.has(m.id))
    items.value = [...newer, ...found]
  }
  function dehydrate(): void {
    items.value = []
  }

  function onMissed(frame: FrameOf<'call.missed'>): void {
    const d = frame.data
    if (!d.call_id || items.value.some((m) => m.id === d.id)) return
    items.value = [
      {
        id: d.id, client_id: d.client_id ?? null, name: null, phone: d.caller ?? null,
        at: d.ended_at ?? d.started_at ?? new Date().toISOString(), task_id: null, covered: 1,
      },
      ...items.value,
    ]
    void hydrate() // its name and the callback task it became (committed before the frame)
  }
  realtime.on('call.missed', onMissed)
  realtime.on('reconnected', () => void hydrate())

  /** The rows: a client's (or a number's) missed calls together, newest first; the count
   * is the calls listed or what their callback task covers, whichever is more. */
  const rows = computed<MissedRow[]>(() => {
    const byKey = new Map<string, MissedRow>()
    const listed = new Map<string, number>()
    for (const m of items.value) {
      const key = m.client_id !== null ? `c${m.client_id}` : `n${m.phone ?? ''}`
      const row = byKey.get(key) ?? {
        key, client_id: m.client_id, name: m.name, phone: m.phone, count: 0, at: m.at, task_ids: [],
      }
      listed.set(key, (listed.get(key) ?? 0) + 1)
      row.count = Math.max(row.count, listed.get(key)!, m.covered)
      row.name = row.name ?? m.name
      if (m.at > row.at) row.at = m.at
      if (m.task_id !== null && !row.task_ids.includes(m.task_id)) row.task_ids.push(m.task_id)
      byKey.set(key, row)
    }
    return [...byKey.values()].sort((a, b) => b.at.localeCompare(a.at))
  })

  return { rows, hydrate, dehydrate }
})
