// What a user reads when the API refuses: the stable `code` in their language, never the
// server's own text or a field's internal name.
import { useMessage } from 'naive-ui'
import { i18n } from '../i18n'
import { ApiError } from './client'

export function errorText(e: unknown): string {
  const { t, te } = i18n.global
  if (!(e instanceof ApiError)) return t('errors.unknown')
  if (e.code === 'validation_error') {
    const fields = (e.details.fields as { field?: string }[] | undefined) ?? []
    const names = fields.map((f) => `fields.${f.field ?? ''}`).filter((k) => te(k)).map((k) => t(k))
    return names.length ? t('errors.invalid_fields', { fields: [...new Set(names)].join(', ') }) : t('errors.validation_error')
  }
  if (te(`errors.${e.code}`)) return t(`errors.${e.code}`)
  if (e.status >= 500) return t('errors.server_error')
  return t('errors.unknown')
}

/** Shows a refusal as a toast. A refused session is not shown: the tab is taken to the
 * sign-in page, which says that the session ended. */
export function useErrorToast(): (e: unknown) => void {
  const message = useMessage()
  return (e) => {
    if (!(e instanceof ApiError && e.status === 401)) message.error(errorText(e))
  }
}
