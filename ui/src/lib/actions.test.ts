import { describe, expect, it } from 'vitest';
import type { JobType, Status } from '../api/types';
import { actionsFor } from './actions';

const names = (status: Status, type: JobType = 'aria2') =>
  actionsFor(status, type)
    .map((a) => a.name)
    .sort();

describe('actionsFor', () => {
  it('gives exactly the buttons each status allows', () => {
    expect(names('queued')).toEqual(['Cancel', 'Delete', 'Pause']);
    expect(names('running')).toEqual(['Cancel', 'Pause']);
    expect(names('paused')).toEqual(['Cancel', 'Delete', 'Resume']);
    expect(names('failed')).toEqual(['Delete', 'Retry']);
    expect(names('cancelled')).toEqual(['Delete', 'Retry']);
    expect(names('completed')).toEqual(['Delete']);
  });

  it('adds Stop for running ffmpeg jobs only', () => {
    expect(names('running', 'ffmpeg')).toEqual(['Cancel', 'Pause', 'Stop']);
    expect(names('queued', 'ffmpeg')).not.toContain('Stop');
    expect(names('paused', 'ffmpeg')).not.toContain('Stop');
    for (const type of ['ytdlp', 'aria2', 'twitter'] as const) {
      expect(names('running', type)).not.toContain('Stop');
    }
  });

  it('never offers Delete while running (the server refuses it)', () => {
    expect(names('running', 'ffmpeg')).not.toContain('Delete');
  });

  it('maps each button to its REST action', () => {
    const all = [
      ...actionsFor('running', 'ffmpeg'),
      ...actionsFor('paused', 'aria2'),
      ...actionsFor('failed', 'aria2'),
    ];
    const map = Object.fromEntries(all.map((a) => [a.name, a.action]));
    expect(map).toEqual({
      Stop: 'stop',
      Pause: 'pause',
      Cancel: 'cancel',
      Resume: 'resume',
      Delete: 'delete',
      Retry: 'retry',
    });
  });
});
