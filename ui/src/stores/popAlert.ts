import { defineStore } from 'pinia'
import { ref } from 'vue'

// A pop can come while the user looks at another window: an optional system notification
// and a ring (off by default, the choice kept per browser). The browser asks for the
// notification permission once, when the user turns this on.
const KEY = 'callcard.popAlert'

export const usePopAlert = defineStore('popAlert', () => {
  const on = ref(localStorage.getItem(KEY) === 'on')
  const ringing = ref<number | null>(null) // the call (row id) whose pop rings now
  let audio: AudioContext | null = null
  let timer: ReturnType<typeof setInterval> | undefined
  let shown: Notification | null = null

  async function set(value: boolean): Promise<void> {
    on.value = value
    localStorage.setItem(KEY, value ? 'on' : 'off')
    if (!value) stop()
    else if ('Notification' in window && Notification.permission === 'default') await Notification.requestPermission()
  }

  // One burst of the Russian ringback: 425 Hz for a second, every four seconds.
  function burst(): void {
    if (!audio) return
    const tone = audio.createOscillator()
    const gain = audio.createGain()
    tone.frequency.value = 425
    gain.gain.value = 0.15
    tone.connect(gain).connect(audio.destination)
    tone.start()
    tone.stop(audio.currentTime + 1)
  }

  /** A pop arrived in this tab: notify and ring until `stop` (answered, ended, muted). */
  function alert(id: number, title: string, body: string): void {
    if (!on.value || ringing.value === id) return
    stop()
    ringing.value = id
    if ('Notification' in window && Notification.permission === 'granted') {
      shown = new Notification(title, { body, tag: `call-${id}` })
      shown.onclick = () => window.focus()
    }
    audio = new AudioContext()
    burst()
    timer = setInterval(burst, 4000)
  }

  function stop(id?: number): void {
    if (id !== undefined && ringing.value !== id) return
    ringing.value = null
    clearInterval(timer)
    shown?.close()
    shown = null
    void audio?.close()
    audio = null
  }

  return { on, ringing, set, alert, stop }
})
