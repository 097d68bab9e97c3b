import { describe, expect, it } from 'vitest';
import type { Detection } from '../api/types';
import { buildBody, buildOptions, DEFAULT_OPTIONS, optionGroups, parseLanguages, parseUrls, textAfterSubmit, type OptionsState } from './options';

const YTDLP = ['format', 'audioOnly', 'audioFormat', 'playlist', 'maxItems', 'subtitles'];
const opts = (o: Partial<OptionsState>): OptionsState => ({ ...DEFAULT_OPTIONS, ...o });
const detection = (d: Partial<Detection>): Detection => ({
  type: 'ytdlp',
  twitter: null,
  options: YTDLP,
  blocked: null,
  ...d,
});

describe('parseUrls', () => {
  it('one job a line: trimmed, blank lines and repeats dropped', () => {
    expect(parseUrls(' https://a.example/1 \n\nhttps://b.example/2\r\nhttps://a.example/1\n  ')).toEqual([
      'https://a.example/1',
      'https://b.example/2',
    ]);
    expect(parseUrls('   \n')).toEqual([]);
  });
});

describe('textAfterSubmit', () => {
  const a = 'https://a.example/1';
  const b = 'https://b.example/2';
  const c = 'https://c.example/3';
  it('leaves the URLs that were not created when the box was not touched', () => {
    expect(textAfterSubmit(`${a}\n${b}`, `${a}\n${b}`, new Set([a]))).toBe(b);
    expect(textAfterSubmit(`${a}\n${b}`, `${a}\n${b}`, new Set([a, b]))).toBe('');
    expect(textAfterSubmit(` ${a} \n\n${a}`, ` ${a} \n\n${a}`, new Set())).toBe(a);
  });
  it('keeps what was typed while the jobs were being created', () => {
    // Replaced with a new URL before the answer came: the new URL stays.
    expect(textAfterSubmit(a, c, new Set([a]))).toBe(c);
    // Added a line under the one being sent: the sent one goes, the new one stays.
    expect(textAfterSubmit(a, `${a}\n${c}`, new Set([a]))).toBe(c);
    // Edited a URL that then failed: the edit is kept as typed.
    expect(textAfterSubmit(b, `${b}x`, new Set())).toBe(`${b}x`);
  });
});

describe('buildOptions', () => {
  it('sends nothing the person did not change', () => {
    for (const type of ['ytdlp', 'aria2', 'ffmpeg', 'twitter'] as const) {
      expect(buildOptions(type, DEFAULT_OPTIONS, YTDLP, 'user').options).toEqual({});
    }
  });

  it('yt-dlp: preset, audio, playlist, subtitles', () => {
    const { options, errors } = buildOptions(
      'ytdlp',
      opts({ format: '720p', audioOnly: true, audioFormat: 'opus', playlist: true, maxItems: '25', subtitles: 'en, pt-BR en' }),
      YTDLP,
    );
    expect(errors).toEqual({});
    expect(options).toEqual({
      format: '720p',
      audioOnly: true,
      audioFormat: 'opus',
      playlist: true,
      maxItems: 25,
      subtitles: ['en', 'pt-BR'],
    });
  });

  it('yt-dlp: a custom selector, and a missing one is an error', () => {
    expect(buildOptions('ytdlp', opts({ format: 'custom', customFormat: ' bv*+ba/b ' }), YTDLP).options).toEqual({
      format: 'bv*+ba/b',
    });
    expect(buildOptions('ytdlp', opts({ format: 'custom' }), YTDLP).errors.customFormat).toBeTruthy();
  });

  it('does not send what a switched-off option governs', () => {
    const { options } = buildOptions('ytdlp', opts({ audioFormat: 'mp3', maxItems: '5' }), YTDLP);
    expect(options).toEqual({});
  });

  it('checks the ranges (1-1000 items, 1-3000 tweets)', () => {
    expect(buildOptions('ytdlp', opts({ playlist: true, maxItems: '0' }), YTDLP).errors.maxItems).toBeTruthy();
    expect(buildOptions('ytdlp', opts({ playlist: true, maxItems: '1001' }), YTDLP).errors.maxItems).toBeTruthy();
    expect(buildOptions('ytdlp', opts({ playlist: true, maxItems: '2.5' }), YTDLP).errors.maxItems).toBeTruthy();
    expect(buildOptions('ytdlp', opts({ playlist: true, maxItems: '1000' }), YTDLP).options.maxItems).toBe(1000);
    const tw = ['mediaType', 'includeRetweets', 'maxTweets'];
    expect(buildOptions('twitter', opts({ maxTweets: '3001' }), tw, 'user').errors.maxTweets).toBeTruthy();
    expect(buildOptions('twitter', opts({ maxTweets: '3000' }), tw, 'user').options).toEqual({ maxTweets: 3000 });
  });

  it('ffmpeg: only the container', () => {
    expect(buildOptions('ffmpeg', opts({ container: 'mkv', format: '720p' }), ['container']).options).toEqual({
      container: 'mkv',
    });
  });

  it('twitter: profile options only for a profile', () => {
    const state = opts({ mediaType: 'videos', includeRetweets: true, maxTweets: '50' });
    const tw = ['mediaType', 'includeRetweets', 'maxTweets'];
    expect(buildOptions('twitter', state, tw, 'user').options).toEqual({
      mediaType: 'videos',
      includeRetweets: true,
      maxTweets: 50,
    });
    expect(buildOptions('twitter', state, tw, 'tweet').options).toEqual({});
  });

  it('never sends a name the server did not list for the type', () => {
    expect(buildOptions('ytdlp', opts({ format: 'best', playlist: true }), ['format']).options).toEqual({
      format: 'best',
    });
  });
});

describe('buildBody', () => {
  it('without a detection: the URL alone (the server detects and answers)', () => {
    expect(buildBody('https://x.example/', null, opts({ format: '720p' }))).toEqual({
      body: { url: 'https://x.example/' },
      errors: {},
    });
  });

  it('options for the detected type only; none for aria2', () => {
    const state = opts({ format: '480p', container: 'mkv' });
    expect(buildBody('https://v.example/w', detection({}), state).body).toEqual({
      url: 'https://v.example/w',
      options: { format: '480p' },
    });
    expect(buildBody('https://v.example/a.m3u8', detection({ type: 'ffmpeg', options: ['container'] }), state).body).toEqual({
      url: 'https://v.example/a.m3u8',
      options: { container: 'mkv' },
    });
    expect(buildBody('https://v.example/a.zip', detection({ type: 'aria2', options: [] }), state).body).toEqual({
      url: 'https://v.example/a.zip',
    });
  });
});

describe('optionGroups and parseLanguages', () => {
  it('shows the groups of the detected type', () => {
    expect(optionGroups(detection({}))).toEqual({ ytdlp: true, ffmpeg: false, twitterProfile: false });
    expect(optionGroups(detection({ type: 'ffmpeg', options: ['container'] }))).toMatchObject({ ffmpeg: true });
    expect(
      optionGroups(detection({ type: 'twitter', options: ['mediaType'], twitter: { kind: 'user', name: 'jack' } })),
    ).toMatchObject({ twitterProfile: true });
    expect(
      optionGroups(detection({ type: 'twitter', options: ['mediaType'], twitter: { kind: 'tweet', id: '1' } })),
    ).toMatchObject({ twitterProfile: false });
    expect(optionGroups(null)).toEqual({ ytdlp: false, ffmpeg: false, twitterProfile: false });
  });

  it('splits languages on commas and spaces', () => {
    expect(parseLanguages('en,de  fr, en')).toEqual(['en', 'de', 'fr']);
    expect(parseLanguages(' , ')).toEqual([]);
  });
});

describe('cookies and notify options', () => {
  it('sends the cookies of yt-dlp and Twitter/X jobs only', () => {
    expect(buildOptions('ytdlp', opts({ cookies: 'yt' }), ['format']).options).toEqual({ cookies: 'yt' });
    expect(buildOptions('twitter', opts({ cookies: 'x' }), [], 'tweet').options).toEqual({ cookies: 'x' });
    expect(buildOptions('aria2', opts({ cookies: 'yt' }), []).options).toEqual({});
    expect(buildOptions('ffmpeg', opts({ cookies: 'yt' }), ['container']).options).toEqual({});
  });

  it('sends notify for every type, only when chosen (null: the defaults)', () => {
    expect(buildOptions('aria2', opts({ notify: null }), []).options).toEqual({});
    expect(buildOptions('aria2', opts({ notify: [] }), []).options).toEqual({ notify: [] });
    expect(buildOptions('ffmpeg', opts({ notify: ['phone'] }), ['container']).options).toEqual({ notify: ['phone'] });
    expect(buildBody('https://x/f.bin', detection({ type: 'aria2', options: [] }), opts({ notify: ['a'] })).body).toEqual({
      url: 'https://x/f.bin',
      options: { notify: ['a'] },
    });
  });
});
