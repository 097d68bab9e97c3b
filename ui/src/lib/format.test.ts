import { describe, expect, it } from 'vitest';
import { formatBytes, formatDuration, formatEta, formatPercent, formatSpeed } from './format';

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [999, '999 B'],
    [1000, '1.0 kB'],
    [1234, '1.2 kB'],
    [99_949, '99.9 kB'],
    [123_456, '123 kB'],
    [1_234_567, '1.2 MB'],
    [999_999, '1.0 MB'], // rounding carries into the next unit, never "1000 kB"
    [5_368_709_120, '5.4 GB'],
    [2.5e12, '2.5 TB'],
  ])('%d → %s', (n, text) => {
    expect(formatBytes(n)).toBe(text);
  });

  it('is empty when unknown or nonsense', () => {
    expect(formatBytes(null)).toBe('');
    expect(formatBytes(undefined)).toBe('');
    expect(formatBytes(-1)).toBe('');
    expect(formatBytes(Number.NaN)).toBe('');
  });
});

describe('formatSpeed', () => {
  it('adds /s', () => {
    expect(formatSpeed(1_200_000)).toBe('1.2 MB/s');
    expect(formatSpeed(512)).toBe('512 B/s');
  });
  it('is empty when unknown', () => {
    expect(formatSpeed(null)).toBe('');
  });
});

describe('formatDuration and formatEta', () => {
  it.each([
    [0, '0 s'],
    [45, '45 s'],
    [59.6, '1 min 00 s'],
    [65, '1 min 05 s'],
    [600, '10 min 00 s'],
    [3599, '59 min 59 s'],
    [3600, '1 h 00 min'],
    [7380, '2 h 03 min'],
    [86_400 + 4 * 3600, '1 d 04 h'],
  ])('%d s → %s', (s, text) => {
    expect(formatDuration(s)).toBe(text);
  });

  it('says "left" for an ETA, nothing when unknown', () => {
    expect(formatEta(65)).toBe('1 min 05 s left');
    expect(formatEta(null)).toBe('');
    expect(formatEta(-5)).toBe('');
  });
});

describe('formatPercent', () => {
  it('shows one decimal, and 100% only when done', () => {
    expect(formatPercent(45.23)).toBe('45.2%');
    expect(formatPercent(0)).toBe('0%');
    expect(formatPercent(100)).toBe('100%');
    expect(formatPercent(99.97)).toBe('99.9%');
    expect(formatPercent(140)).toBe('100%');
    expect(formatPercent(null)).toBe('');
  });
});
