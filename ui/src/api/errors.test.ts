import { afterEach, describe, expect, it } from 'vitest'
import { i18n } from '../i18n'
import { ApiError } from './client'
import { errorText } from './errors'

describe('API errors in the user language', () => {
  afterEach(() => (i18n.global.locale.value = 'en'))

  it('translates a stable code and never shows the server text', () => {
    i18n.global.locale.value = 'ru'
    const e = new ApiError(503, 'pbx_unreachable', 'AMI not connected (Connection refused)')
    expect(errorText(e)).toBe('Нет связи с АТС: звонить сейчас нельзя.')
    expect(errorText(new ApiError(500, 'server_error', 'Internal Server Error'))).not.toContain('Internal')
  })

  it('names the fields of a validation error in words, not their keys', () => {
    i18n.global.locale.value = 'ru'
    const e = new ApiError(422, 'validation_error', 'invalid fields: phones.0.number', {
      fields: [{ field: 'name', message: 'String should have at least 1 character' }],
    })
    expect(errorText(e)).toBe('Проверьте поля: Имя')
    const unknown = new ApiError(422, 'validation_error', 'x', { fields: [{ field: 'weird.0.x' }] })
    expect(errorText(unknown)).toBe('Проверьте введённые данные.')
  })

  it('falls back by status for codes it does not know', () => {
    expect(errorText(new ApiError(502, 'bad_gateway_html', '<html>'))).toMatch(/^The server failed/)
    expect(errorText(new ApiError(418, 'teapot', 'I am a teapot'))).toBe('Something went wrong. Try again.')
    expect(errorText(new Error('boom'))).toBe('Something went wrong. Try again.')
  })
})
