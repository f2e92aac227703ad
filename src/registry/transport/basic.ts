// HTTP basic authentication.
import type { Credentials } from '../types.js';

export function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}
