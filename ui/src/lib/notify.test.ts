import { describe, expect, it } from 'vitest';
import type { Target } from '../api/types';
import { defaultTargets, jobTargets, notifyOption, toggle } from './notify';

const t = (name: string, isDefault: boolean, events: Target['events'] = ['completed', 'failed']): Target => ({
  name,
  kind: 'webhook',
  events,
  default: isDefault,
});
const TARGETS = [t('home', true), t('phone', false), t('team', true), t('subs', false, ['subscription.new'])];

describe('notify', () => {
  it('preselects the default targets', () => {
    expect(defaultTargets(TARGETS)).toEqual(['home', 'team']);
  });

  it('offers for jobs only the targets told about a job', () => {
    expect(jobTargets(TARGETS).map((x) => x.name)).toEqual(['home', 'phone', 'team']);
  });

  it('sends nothing while the choice is the defaults, in any order', () => {
    expect(notifyOption(['team', 'home'], TARGETS)).toBeUndefined();
    expect(notifyOption(new Set(['home', 'team']), TARGETS)).toBeUndefined();
  });

  it('sends the choice when it differs, in the targets order; [] for none', () => {
    expect(notifyOption(['phone', 'home'], TARGETS)).toEqual(['home', 'phone']);
    expect(notifyOption(['home'], TARGETS)).toEqual(['home']);
    expect(notifyOption([], TARGETS)).toEqual([]);
  });

  it('drops names no longer configured', () => {
    expect(notifyOption(['home', 'team', 'gone'], TARGETS)).toBeUndefined();
    expect(notifyOption(['gone'], TARGETS)).toEqual([]);
  });

  it('with no default, any pick is sent and none is the defaults', () => {
    const none = [t('a', false), t('b', false)];
    expect(notifyOption([], none)).toBeUndefined();
    expect(notifyOption(['b'], none)).toEqual(['b']);
  });

  it('toggles without changing the old set', () => {
    const before = new Set(['home']);
    const after = toggle(before, 'phone', true);
    expect([...after].sort()).toEqual(['home', 'phone']);
    expect([...before]).toEqual(['home']);
    expect([...toggle(after, 'home', false)]).toEqual(['phone']);
  });
});
