// Which buttons a job shows, from its status (and type, for Stop). Pure.
import type { Action, JobType, Status } from '../api/types';

export type ButtonName = 'Cancel' | 'Pause' | 'Resume' | 'Retry' | 'Stop' | 'Delete';

export interface ActionButton {
  /** The button's accessible name: exactly one of the contract's names. */
  name: ButtonName;
  /** The REST action, or "delete" for DELETE /downloads/{id}. */
  action: Action | 'delete';
}

const B = {
  Cancel: { name: 'Cancel', action: 'cancel' },
  Pause: { name: 'Pause', action: 'pause' },
  Resume: { name: 'Resume', action: 'resume' },
  Retry: { name: 'Retry', action: 'retry' },
  Stop: { name: 'Stop', action: 'stop' },
  Delete: { name: 'Delete', action: 'delete' },
} as const satisfies Record<ButtonName, ActionButton>;

/**
 * queued: Pause, Cancel, Delete · running: Pause, Cancel (+ Stop for ffmpeg) ·
 * paused: Resume, Cancel, Delete · failed/cancelled: Retry, Delete · completed: Delete.
 */
export function actionsFor(status: Status, type: JobType): ActionButton[] {
  switch (status) {
    case 'queued':
      return [B.Pause, B.Cancel, B.Delete];
    case 'running':
      return type === 'ffmpeg' ? [B.Stop, B.Pause, B.Cancel] : [B.Pause, B.Cancel];
    case 'paused':
      return [B.Resume, B.Cancel, B.Delete];
    case 'failed':
    case 'cancelled':
      return [B.Retry, B.Delete];
    case 'completed':
      return [B.Delete];
    default:
      return [];
  }
}

export const STATUSES: readonly Status[] = [
  'queued',
  'running',
  'paused',
  'completed',
  'failed',
  'cancelled',
];

export function isStatus(value: unknown): value is Status {
  return typeof value === 'string' && (STATUSES as readonly string[]).includes(value);
}

export function isTerminal(status: Status): boolean {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}
