/**
 * An error a user can act on: which field, what value, what is accepted. Tools turn it into
 * an isError result; the CLI prints it and exits non-zero.
 */
export class UserError extends Error {
  constructor(
    readonly code: 'invalid_argument' | 'not_found' | 'conflict' | 'unavailable' | 'backlog_full' | 'locked' | 'not_leader' | 'unsupported' | 'session_expired' | 'disk_full',
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

export function invalid(field: string, value: unknown, accepted: string): UserError {
  return new UserError('invalid_argument', `${field}=${JSON.stringify(value)} is not valid; accepted: ${accepted}`, field);
}
