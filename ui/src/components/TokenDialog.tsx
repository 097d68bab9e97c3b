import { useId, useRef, useState, type FormEvent } from 'react';
import { api, ApiError } from '../api/client';
import { useAuth } from '../app/hooks';
import { acceptToken, auth } from '../app/services';
import { Modal } from './Modal';

export function TokenDialog() {
  const state = useAuth();
  if (state.dismissed) {
    return (
      <div role="status" className="border-b border-indigo-200 bg-indigo-50 text-indigo-900 dark:border-indigo-500/30 dark:bg-indigo-500/10 dark:text-indigo-200">
        <p className="mx-auto flex max-w-5xl flex-wrap items-center gap-x-3 gap-y-1 px-4 py-2 text-sm sm:px-6">
          This mediad needs an API token to show and start downloads.
          <button type="button" className="font-semibold underline underline-offset-2" onClick={() => auth.reopen()}>
            Enter the token
          </button>
        </p>
      </div>
    );
  }
  if (!state.open) return null;
  return <TokenForm key="token" reason={state.reason} serverMessage={state.message} />;
}

function TokenForm({ reason, serverMessage }: { reason: 'missing' | 'wrong'; serverMessage: string | null }) {
  const input = useRef<HTMLInputElement>(null);
  const id = useId();
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string | null>(
    reason === 'wrong' ? wrongText(serverMessage) : null,
  );

  const save = async (e: FormEvent) => {
    e.preventDefault();
    const value = token.trim();
    if (!value) {
      setProblem('Type the API token first.');
      input.current?.focus();
      return;
    }
    setBusy(true);
    try {
      await api.checkToken(value);
      acceptToken(value);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) setProblem(wrongText(err.message));
      else setProblem(err instanceof ApiError ? err.message : 'The token could not be checked.');
      input.current?.select();
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal
      title="API token required"
      onClose={() => auth.dismiss()}
      initialFocus={input}
      description="This mediad asks for an API token (one of server.api_tokens). It is kept in this browser only."
    >
      <form onSubmit={save} noValidate>
        <label htmlFor={id} className="label">
          API token
        </label>
        <input
          ref={input}
          id={id}
          type="password"
          autoComplete="current-password"
          spellCheck={false}
          className="field font-mono"
          value={token}
          onChange={(e) => setToken(e.target.value)}
          aria-invalid={problem ? true : undefined}
          aria-describedby={problem ? `${id}-problem` : undefined}
        />
        {problem && (
          <p id={`${id}-problem`} role="alert" className="mt-2 text-sm text-red-600 dark:text-red-400">
            {problem}
          </p>
        )}
        <div className="mt-5 flex flex-col-reverse gap-2 sm:flex-row sm:justify-end">
          <button type="button" className="btn-secondary" onClick={() => auth.dismiss()}>
            Not now
          </button>
          <button type="submit" className="btn-primary" disabled={busy}>
            Save
          </button>
        </div>
      </form>
    </Modal>
  );
}

function wrongText(serverMessage: string | null): string {
  return `That is the wrong token${serverMessage ? `: the server says “${serverMessage}”` : ''}.`;
}
