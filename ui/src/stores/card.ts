import { defineStore } from 'pinia'
import { ref } from 'vue'
import { api, type AuditEntry, type ClientPublic, type Communication, type Deal, type Task } from '../api/client'
import { errorText } from '../api/errors'
import { realtime, type Frame } from '../realtime/socket'
import { useSession } from './session'

const PAGE = 20

/** The client card the user has open: `hydrate(id)` loads it and has the socket watch it,
 * its frames keep it live (the timeline on any frame of the client, deals and tasks on
 * theirs), `dehydrate()` lets it go. */
export const useCard = defineStore('card', () => {
  const id = ref<number | null>(null)
  const client = ref<ClientPublic | null>(null)
  const timeline = ref<Communication[]>([])
  const timelineTotal = ref(0)
  const timelinePage = ref(1)
  const deals = ref<Deal[] | null>(null)
  const tasks = ref<Task[] | null>(null)
  const audit = ref<AuditEntry[]>([])
  const notFound = ref('')

  async function hydrate(clientId: number): Promise<void> {
    if (id.value !== clientId) {
      dehydrate()
      id.value = clientId
      realtime.watch(clientId)
    }
    notFound.value = ''
    try {
      const card = await api.get('/clients/{client_id}/card', { path: { client_id: clientId } })
      if (id.value !== clientId) return // the user went on to another card meanwhile
      client.value = card.client
      timeline.value = card.communications
      timelineTotal.value = card.communications_total
      timelinePage.value = 1
    } catch (e) {
      notFound.value = errorText(e)
      return
    }
    await loadSide()
  }

  function dehydrate(): void {
    if (id.value !== null) realtime.unwatch(id.value)
    id.value = null
    client.value = null
    timeline.value = []
    timelineTotal.value = 0
    deals.value = tasks.value = null
    audit.value = []
  }

  async function loadSide(): Promise<void> {
    const clientId = id.value
    if (clientId === null) return
    const q = { client_id: clientId, page_size: 50 }
    const [d, t, a] = await Promise.all([
      api.get('/deals', { query: q }).catch(() => null),
      api.get('/tasks', { query: { ...q, open_only: true } }).catch(() => null),
      useSession().isStaff ? api.get('/clients/{client_id}/audit', { path: { client_id: clientId } }).catch(() => null) : null,
    ])
    if (id.value !== clientId) return
    deals.value = d?.items ?? null
    tasks.value = t?.items ?? null
    audit.value = a?.items ?? []
  }

  async function reloadTimeline(): Promise<void> {
    const clientId = id.value
    if (clientId === null) return
    const res = await api.get('/clients/{client_id}/communications', {
      path: { client_id: clientId }, query: { page: 1, page_size: PAGE * timelinePage.value },
    })
    if (id.value !== clientId) return
    timeline.value = res.items
    timelineTotal.value = res.total
  }

  async function more(): Promise<void> {
    const clientId = id.value
    if (clientId === null) return
    timelinePage.value += 1
    const res = await api.get('/clients/{client_id}/communications', {
      path: { client_id: clientId }, query: { page: timelinePage.value, page_size: PAGE },
    })
    if (id.value === clientId) timeline.value = [...timeline.value, ...res.items]
  }

  function onFrame(f: Frame): void {
    if (id.value === null || f.type === 'watching') return
    const d = f.data as {
      client_id?: number; communication?: { client_id?: number }; deal?: { client_id?: number }; task?: { client_id?: number | null }
    }
    // A call or message of the client, an entry of its timeline, a comment (sent only to
    // sockets watching a card: this one).
    if (d.client_id === id.value || d.communication?.client_id === id.value || f.type === 'communication.commented') {
      void reloadTimeline()
    }
    if (d.deal?.client_id === id.value || d.task?.client_id === id.value) void loadSide()
  }
  realtime.on('*', onFrame)
  // Back from a lost connection: whatever happened meanwhile is refetched.
  realtime.on('reconnected', (f) => {
    if (id.value !== null && f.data.resumed) void reloadTimeline()
  })
  realtime.on('resync', () => { if (id.value !== null) void hydrate(id.value) })

  return {
    id, client, timeline, timelineTotal, deals, tasks, audit, notFound,
    hydrate, dehydrate, loadSide, reloadTimeline, more,
  }
})
