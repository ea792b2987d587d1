import { onBeforeUnmount, ref, type Ref } from 'vue'

/** Whether a CSS media query matches (a phone's width, say), kept current while the
 * component that asks is mounted: for what CSS alone cannot change, like a table's columns. */
export function useMedia(query: string): Ref<boolean> {
  const list = window.matchMedia(query)
  const matches = ref(list.matches)
  const update = (e: MediaQueryListEvent): void => {
    matches.value = e.matches
  }
  list.addEventListener('change', update)
  onBeforeUnmount(() => list.removeEventListener('change', update))
  return matches
}
