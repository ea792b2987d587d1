import { createPinia } from 'pinia'
import { createApp } from 'vue'
import App from './App.vue'
import { setUnauthorizedHandler } from './api/client'
import { i18n } from './i18n'
import { router } from './router'
import { useSession } from './stores/session'

const app = createApp(App)
app.use(createPinia())
app.use(i18n)
document.documentElement.lang = i18n.global.locale.value

const session = useSession()
setUnauthorizedHandler(() => {
  if (session.user) {
    session.user = null
    void router.push({ name: 'login', query: { next: router.currentRoute.value.fullPath } })
  }
})
app.use(router)
app.mount('#app')
