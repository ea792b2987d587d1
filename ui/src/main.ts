import { createPinia } from 'pinia'
import { createApp } from 'vue'
import App from './App.vue'
import { setUnauthorizedHandler } from './api/client'
import { i18n } from './i18n'
import { realtime } from './realtime/socket'
import { router } from './router'
import { useSession } from './stores/session'

const app = createApp(App)
app.use(createPinia())
app.use(i18n)
document.documentElement.lang = i18n.global.locale.value

const session = useSession()
// The session ended elsewhere (logged out in another tab, revoked, deactivated): an API
// call or the live socket is refused. The sign-in page, and back here after it.
function signedOut(): void {
  if (!session.user) return
  void session.logout(false)
  // Back to the address the tab shows: during the first load the router's current route is
  // still its start ('/'). The reason rides in the history entry, not the address, so a
  // bookmark of it claims nothing.
  const next = window.location.pathname + window.location.search
  void router.push({ name: 'login', query: { next }, state: { sessionEnded: true } })
}
setUnauthorizedHandler(signedOut)
realtime.on('unauthorized', signedOut)
app.use(router)
app.mount('#app')
