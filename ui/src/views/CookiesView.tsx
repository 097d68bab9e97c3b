import { useId, useRef, useState, type FormEvent } from 'react';
import { api, ApiError } from '../api/client';
import type { CookieFile } from '../api/types';
import { useResource } from '../app/hooks';
import { cookies, toasts } from '../app/services';
import { ConfirmDelete } from '../components/DeleteDialog';
import { cookiesText, nameFromFile, nameProblem, readCookiesFile } from '../lib/cookies';
import { formatBytes, formatTime } from '../lib/format';
import { removeCookie, upsertCookie } from '../lib/lists';
import { FormError, ListStatus, Meta, toastError, ViewSection } from './parts';

export default function CookiesView() {
  const state = useResource(cookies);
  const [toDelete, setToDelete] = useState<CookieFile | null>(null);
  return (
    <ViewSection
      id="cookies"
      title="Cookies"
      intro="Named cookies.txt files for sites that need a login. yt-dlp and Twitter/X jobs use one through their Cookies option. Their content is never shown again."
    >
      {state.availability !== 'unavailable' && <CookiesForm />}
      <ListStatus state={state} what="cookies" retry={() => void cookies.refresh()} />
      {state.availability === 'ready' && state.items.length === 0 && (
        <p className="text-sm text-zinc-500">No cookies stored.</p>
      )}
      <ul aria-label="Cookie files" className="space-y-3">
        {state.items.map((c) => (
          <li key={c.name} aria-label={c.name} className="card flex items-start justify-between gap-3 p-4">
            <div className="min-w-0">
              <h3 className="text-sm font-semibold [overflow-wrap:anywhere]">{c.name}</h3>
              <Meta>
                <span>{c.entries === 1 ? '1 cookie' : `${c.entries} cookies`}</span>
                <span>{formatBytes(c.size)}</span>
                <time dateTime={c.updatedAt}>{formatTime(c.updatedAt)}</time>
              </Meta>
            </div>
            <button
              type="button"
              className="btn-ghost min-h-8 px-2.5 py-1 text-xs text-red-600 hover:text-red-700 dark:text-red-400 dark:hover:text-red-300"
              onClick={() => setToDelete(c)}
            >
              Delete
            </button>
          </li>
        ))}
      </ul>
      {toDelete && (
        <ConfirmDelete
          title="Delete cookies?"
          name={toDelete.name}
          consequence="Jobs queued with them fail when they start (cookies_missing)."
          onConfirm={() => deleteCookies(toDelete.name)}
          onClose={() => setToDelete(null)}
        />
      )}
    </ViewSection>
  );
}

async function deleteCookies(name: string): Promise<void> {
  try {
    await api.deleteCookies(name);
    cookies.update((l) => removeCookie(l, name));
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) cookies.update((l) => removeCookie(l, name));
    else toastError(e);
  }
}

function CookiesForm() {
  const id = useId();
  const fileRef = useRef<HTMLInputElement>(null);
  const [name, setName] = useState('');
  const [pasted, setPasted] = useState('');
  /** The chosen file, read (its text is never shown). */
  const [file, setFile] = useState<{ fileName: string; text: string; entries: number } | null>(null);
  const [nameError, setNameError] = useState<string | null>(null);
  const [contentError, setContentError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const choose = async (f: File | undefined) => {
    setContentError(null);
    if (!f) return setFile(null);
    const read = await readCookiesFile(f);
    if ('error' in read) {
      setFile(null);
      setContentError(read.error);
      if (fileRef.current) fileRef.current.value = '';
      return;
    }
    setFile({ fileName: f.name, ...read });
    setPasted('');
    if (!name) setName(nameFromFile(f.name));
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (busy) return;
    const problem = nameProblem(name.trim());
    setNameError(problem || null);
    const content = file ? { text: file.text } : cookiesText(pasted);
    if ('error' in content) setContentError(content.error);
    if (problem || 'error' in content) return;
    setBusy(true);
    try {
      const stored = await api.putCookies(name.trim(), content.text);
      cookies.update((l) => upsertCookie(l, stored));
      toasts.show({ kind: 'success', title: 'Cookies stored', message: `${stored.name}: ${stored.entries} cookies` });
      setName('');
      setPasted('');
      setFile(null);
      if (fileRef.current) fileRef.current.value = '';
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;
      const message = err instanceof Error ? err.message : String(err);
      if (err instanceof ApiError && err.code === 'invalid_name') setNameError(message);
      else setContentError(message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit} noValidate aria-label="Upload cookies" className="card space-y-4 p-4 sm:p-5">
      <div className="max-w-sm">
        <label htmlFor={`${id}-name`} className="label">
          Name
        </label>
        <input
          id={`${id}-name`}
          className="field font-mono"
          autoComplete="off"
          spellCheck={false}
          autoCapitalize="off"
          placeholder="youtube"
          maxLength={64}
          value={name}
          onChange={(e) => {
            setName(e.target.value);
            setNameError(null);
          }}
          aria-invalid={nameError ? true : undefined}
          aria-describedby={nameError ? `${id}-name-error` : undefined}
        />
        <FormError id={`${id}-name-error`} text={nameError} />
      </div>
      <div>
        <label htmlFor={`${id}-file`} className="label">
          Cookies file
        </label>
        <input
          ref={fileRef}
          id={`${id}-file`}
          type="file"
          accept=".txt,text/plain"
          className="block w-full text-sm file:mr-3 file:min-h-9 file:rounded-lg file:border file:border-zinc-300 file:bg-white file:px-3 file:py-1.5 file:text-sm file:font-medium file:text-zinc-800 dark:file:border-zinc-700 dark:file:bg-zinc-900 dark:file:text-zinc-100"
          onChange={(e) => void choose(e.target.files?.[0])}
          aria-describedby={contentError ? `${id}-content-error` : undefined}
        />
        {file && (
          <p className="mt-1 text-xs text-zinc-500">
            {file.fileName}: {file.entries === 1 ? '1 cookie' : `${file.entries} cookies`}
          </p>
        )}
      </div>
      <div>
        <label htmlFor={`${id}-paste`} className="label">
          Or paste cookies.txt
        </label>
        <textarea
          id={`${id}-paste`}
          rows={4}
          className="field font-mono text-xs"
          autoComplete="off"
          spellCheck={false}
          placeholder="# Netscape HTTP Cookie File"
          value={pasted}
          disabled={file !== null}
          onChange={(e) => {
            setPasted(e.target.value);
            setContentError(null);
          }}
          aria-invalid={contentError ? true : undefined}
          aria-describedby={contentError ? `${id}-content-error` : undefined}
        />
        <FormError id={`${id}-content-error`} text={contentError} />
      </div>
      <button type="submit" className="btn-primary min-h-11 px-5" disabled={busy}>
        Upload
      </button>
    </form>
  );
}
