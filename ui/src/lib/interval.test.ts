import { describe, expect, it } from 'vitest';
import { formatInterval, formatRelative, intervalChoiceFor, intervalSeconds, parseMinutes } from './interval';

describe('intervals', () => {
  it('names the usual intervals as people say them', () => {
    expect(formatInterval(3600)).toBe('hourly');
    expect(formatInterval(21600)).toBe('every 6 hours');
    expect(formatInterval(86400)).toBe('daily');
    expect(formatInterval(604800)).toBe('weekly');
    expect(formatInterval(5400)).toBe('every 90 minutes');
    expect(formatInterval(60)).toBe('every 1 minute');
    expect(formatInterval(172800)).toBe('every 2 days');
    expect(formatInterval(1209600)).toBe('every 2 weeks');
    expect(formatInterval(90)).toBe('every 90 seconds');
    expect(formatInterval(0)).toBe('');
  });

  it('finds the choice of a number of seconds, else minutes', () => {
    expect(intervalChoiceFor(3600)).toBe('hourly');
    expect(intervalChoiceFor(21600)).toBe('6h');
    expect(intervalChoiceFor(604800)).toBe('weekly');
    expect(intervalChoiceFor(5400)).toBe('minutes');
  });

  it('reads whole minutes within the contract', () => {
    expect(parseMinutes(' 90 ')).toEqual({ seconds: 5400 });
    expect(parseMinutes('1')).toEqual({ seconds: 60 });
    expect(parseMinutes('43200')).toEqual({ seconds: 2592000 });
    for (const bad of ['0', '43201', '1.5', '-3', '', 'ten', '1e3']) {
      expect(parseMinutes(bad)).toHaveProperty('error');
    }
    expect(intervalSeconds('daily', '')).toEqual({ seconds: 86400 });
    expect(intervalSeconds('minutes', '15')).toEqual({ seconds: 900 });
    expect(intervalSeconds('minutes', 'x')).toHaveProperty('error');
  });

  it('says when, relative to now', () => {
    const now = Date.parse('2025-01-01T12:00:00Z');
    expect(formatRelative('2025-01-01T12:00:10Z', now)).toBe('in a moment');
    expect(formatRelative('2025-01-01T11:59:50Z', now)).toBe('just now');
    expect(formatRelative('2025-01-01T12:05:00Z', now)).toBe('in 5 min');
    expect(formatRelative('2025-01-01T09:00:00Z', now)).toBe('3 h ago');
    expect(formatRelative('2025-01-03T12:00:00Z', now)).toBe('in 2 days');
    expect(formatRelative('2024-12-31T12:00:00Z', now)).toBe('1 day ago');
    expect(formatRelative(null, now)).toBe('');
    expect(formatRelative('not a date', now)).toBe('');
  });
});
