import { ref } from 'vue'
import { api } from '../api/client'
import { phone } from '../format'

export interface ClientOption { label: string; value: number }

/** Clients found by name or number as it is typed, as options of a remote NSelect. */
export function useClientSearch(initial: ClientOption[] = []) {
  const found = ref<ClientOption[]>(initial)
  const searching = ref(false)
  async function search(q: string): Promise<void> {
    if (q.trim().length < 2) return
    searching.value = true
    try {
      const page = await api.get('/clients', { query: { q, page_size: 20 } })
      found.value = page.items.map((c) => ({ label: c.primary_phone ? `${c.name} · ${phone(c.primary_phone)}` : c.name, value: c.id }))
    } finally {
      searching.value = false
    }
  }
  return { found, searching, search }
}
