import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api, type Schemas } from '../api/client'
import { realtime } from '../realtime/socket'

export type Links = Schemas['LinksPublic']
export type LinkName = keyof Links

/** The server's links to the outside (PBX, SMSC, SMTP): configured or not, up or down,
 * kept live by `link.status` frames. */
export const useLinks = defineStore('links', () => {
  const links = ref<Links | null>(null)

  async function hydrate(): Promise<void> {
    links.value = await api.get('/links').catch(() => links.value)
  }
  function dehydrate(): void {
    links.value = null
  }
  realtime.on('link.status', ({ data: d }) => {
    if (links.value) links.value = { ...links.value, [d.name]: d.link }
  })
  realtime.on('reconnected', () => void hydrate())

  /** A link the server has but cannot use right now (not configured is not "down"). */
  const down = (name: LinkName) => computed(() => !!links.value?.[name].configured && links.value[name].up === false)
  /** Why a channel cannot be used, as an i18n key, or null when it can. A call needs the
   * PBX now; a message waits in the outbox while its gateway is down. */
  function blocked(name: LinkName): string | null {
    const l = links.value?.[name]
    if (!l) return null
    if (!l.configured) return `links.${name}.notConfigured`
    return name === 'pbx' && l.up === false ? 'links.pbx.down' : null
  }
  return { links, hydrate, dehydrate, pbxDown: down('pbx'), smscDown: down('smsc'), blocked }
})
