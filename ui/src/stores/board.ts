import { defineStore } from 'pinia'
import { ref } from 'vue'
import { api, type BoardColumn } from '../api/client'
import { realtime } from '../realtime/socket'

/** The deals board while its page is open: `hydrate()` loads it (one manager's deals, or
 * everyone's), `deal.updated` frames and a reconnect reload it, `dehydrate()` lets go. */
export const useBoard = defineStore('board', () => {
  const columns = ref<BoardColumn[]>([])
  const managerId = ref<number | null>(null)
  const loading = ref(true)
  const error = ref<unknown>(null)
  let open = false

  async function load(): Promise<void> {
    try {
      columns.value = (await api.get('/deals/board', { query: { manager_id: managerId.value, per_stage: 100 } })).items
      error.value = null
    } catch (e) {
      error.value = e
    } finally {
      loading.value = false
    }
  }

  async function hydrate(): Promise<void> {
    open = true
    await load()
  }
  function dehydrate(): void {
    open = false
    columns.value = []
    loading.value = true
  }
  for (const type of ['deal.updated', 'reconnected', 'resync'] as const) realtime.on(type, () => { if (open) void load() })

  return { columns, managerId, loading, error, hydrate, dehydrate, load }
})
