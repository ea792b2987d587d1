import { ApiError, api } from '../api/client'

/** Click-to-call a client's number: the agent's own phone rings first, then the client's. */
export async function callBack(clientId: number, e164: string | null): Promise<void> {
  const client = await api.get('/clients/{client_id}', { path: { client_id: clientId } })
  const target = client.phones.find((p) => p.e164 === e164) ?? client.phones[0]
  if (!target) throw new ApiError(0, 'no_phone', 'the card has no phone')
  await api.post('/clients/{client_id}/call', { path: { client_id: clientId }, body: { phone_id: target.id } })
}
