import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'
import { useSession, type Section } from './stores/session'

const section = (name: Section, component: () => Promise<unknown>): RouteRecordRaw => ({
  path: `/${name}`,
  name,
  component: component as RouteRecordRaw['component'] & object,
  meta: { section: name },
})

const routes: RouteRecordRaw[] = [
  { path: '/login', name: 'login', component: () => import('./pages/LoginPage.vue'), meta: { public: true } },
  section('console', () => import('./pages/ConsolePage.vue')),
  section('clients', () => import('./pages/ClientsPage.vue')),
  { path: '/clients/:id(\\d+)', name: 'client', component: () => import('./pages/ClientCardPage.vue'), meta: { section: 'clients' } },
  section('deals', () => import('./pages/DealsPage.vue')),
  section('tasks', () => import('./pages/TasksPage.vue')),
  section('supervisor', () => import('./pages/SupervisorPage.vue')),
  section('reports', () => import('./pages/ReportsPage.vue')),
  section('schedules', () => import('./pages/SchedulesPage.vue')),
  section('admin', () => import('./pages/AdminPage.vue')),
  { path: '/account', name: 'account', component: () => import('./pages/AccountPage.vue'), meta: { everyone: true } },
  { path: '/:rest(.*)*', name: 'home', component: { render: () => null } },
]

export const router = createRouter({ history: createWebHistory(), routes })

router.beforeEach(async (to) => {
  const session = useSession()
  if (!session.checked) await session.restore()
  if (to.meta.public) return session.user && to.name === 'login' ? session.home : true
  if (!session.user) return { name: 'login', query: to.fullPath !== '/' ? { next: to.fullPath } : {} }
  if (to.meta.everyone) return true
  const wanted = to.meta.section as Section | undefined
  if (!wanted || !session.sections.includes(wanted)) return session.home
  return true
})
