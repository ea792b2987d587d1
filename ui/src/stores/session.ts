import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api, type Role, type User } from '../api/client'
import { setLang } from '../i18n'
import { realtime, type SocketState } from '../realtime/socket'

export type Section =
  | 'console' | 'clients' | 'deals' | 'tasks' | 'supervisor' | 'reports' | 'schedules' | 'admin'

// Which sections each role sees in the navigation (the API enforces the same on its side).
export const SECTIONS: Record<Role, Section[]> = {
  operator: ['console', 'clients', 'tasks'],
  manager: ['console', 'clients', 'deals', 'tasks', 'schedules'],
  supervisor: ['console', 'clients', 'deals', 'tasks', 'supervisor', 'reports', 'schedules'],
  admin: ['clients', 'supervisor', 'reports', 'schedules', 'admin'],
}

export const useSession = defineStore('session', () => {
  const user = ref<User | null>(null)
  const checked = ref(false)
  const socket = ref<SocketState>('closed')
  realtime.onState = (s) => (socket.value = s)

  const sections = computed<Section[]>(() => (user.value ? SECTIONS[user.value.role] : []))
  const home = computed(() => (sections.value[0] ? `/${sections.value[0]}` : '/login'))
  const isStaff = computed(() => user.value?.role === 'supervisor' || user.value?.role === 'admin')

  // The language saved on the profile wins over the browser's (and over the login page's).
  function signedIn(u: User): void {
    user.value = u
    if (u.language === 'ru' || u.language === 'en') setLang(u.language)
  }

  async function restore(): Promise<void> {
    try {
      signedIn(await api.get('/auth/me'))
      realtime.start()
    } catch {
      user.value = null
    } finally {
      checked.value = true
    }
  }

  async function login(username: string, password: string): Promise<void> {
    const res = await api.post('/auth/login', { body: { username, password } })
    signedIn(res.user)
    realtime.start()
  }

  async function logout(callApi = true): Promise<void> {
    realtime.stop()
    if (callApi) await api.post('/auth/logout').catch(() => undefined)
    user.value = null
  }

  async function saveLanguage(lang: 'ru' | 'en'): Promise<void> {
    if (user.value) user.value = await api.patch('/auth/me', { body: { language: lang } })
  }

  return { user, checked, socket, sections, home, isStaff, restore, login, logout, saveLanguage }
})
