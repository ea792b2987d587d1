import { defineStore } from 'pinia'
import { ref } from 'vue'
import { api, type DirectoryItem, type Page, type User } from '../api/client'
import { useSession } from './session'

/** Directories and the staff list, loaded once per login for filters and forms. */
export const useLookups = defineStore('lookups', () => {
  const groups = ref<DirectoryItem[]>([])
  const segments = ref<DirectoryItem[]>([])
  const sources = ref<DirectoryItem[]>([])
  const users = ref<User[]>([])
  let loaded: Promise<void> | null = null

  async function load(force = false): Promise<void> {
    if (loaded && !force) return loaded
    const session = useSession()
    const list = (kind: 'groups' | 'segments' | 'lead-sources') =>
      api.get('/directories/{kind}', { path: { kind: kind } }).then((r) => r.items).catch(() => [])
    loaded = (async () => {
      ;[groups.value, segments.value, sources.value] = await Promise.all([
        list('groups'), list('segments'), list('lead-sources'),
      ])
      users.value = session.isStaff
        ? await api.get('/users').then((r) => r.items).catch(() => [])
        : []
    })()
    return loaded
  }

  const options = (items: { id: number; name?: string; full_name?: string }[]) =>
    items.map((i) => ({ label: i.name ?? i.full_name ?? `#${i.id}`, value: i.id }))
  const managers = () => options(users.value.filter((u) => u.role === 'manager' && u.is_active))
  // Whoever has a phone to ring takes calls, operators too: they are who shifts are for.
  const onPhones = () => options(users.value.filter((u) => u.extension && u.is_active))

  return { groups, segments, sources, users, load, options, managers, onPhones }
})
