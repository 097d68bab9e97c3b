import { useToasts } from '../app/hooks';
import { toasts } from '../app/services';
import type { Toast } from '../store/toasts';
import { IconAlert, IconCheck, IconInfo, IconX } from './icons';

const STYLE: Record<Toast['kind'], string> = {
  success: 'text-emerald-600 dark:text-emerald-400',
  error: 'text-red-600 dark:text-red-400',
  info: 'text-indigo-600 dark:text-indigo-400',
};

export function Toasts() {
  const list = useToasts();
  return (
    <div
      aria-live="polite"
      aria-label="Notifications"
      className="pointer-events-none fixed inset-x-0 bottom-0 z-50 flex flex-col items-center gap-2 p-3 sm:items-end sm:p-5"
    >
      {list.map((t) => (
        <ToastCard key={t.id} toast={t} />
      ))}
    </div>
  );
}

function ToastCard({ toast }: { toast: Toast }) {
  const Icon = toast.kind === 'success' ? IconCheck : toast.kind === 'error' ? IconAlert : IconInfo;
  return (
    <div
      role={toast.kind === 'error' ? 'alert' : 'status'}
      onMouseEnter={() => toasts.hold(toast.id)}
      onMouseLeave={() => toasts.release(toast.id)}
      onFocus={() => toasts.hold(toast.id)}
      onBlur={() => toasts.release(toast.id)}
      className="pointer-events-auto flex w-full max-w-sm animate-toast-in items-start gap-3 rounded-xl border border-zinc-200 bg-white p-3.5 shadow-lg dark:border-zinc-700 dark:bg-zinc-900"
    >
      <Icon className={`mt-0.5 size-5 shrink-0 ${STYLE[toast.kind]}`} />
      <div className="min-w-0 flex-1 text-sm">
        <p className="font-semibold">{toast.title}</p>
        {toast.message && (
          <p className="mt-0.5 break-words text-zinc-600 dark:text-zinc-400">{toast.message}</p>
        )}
        {toast.links && toast.links.length > 0 && (
          <p className="mt-1.5 flex flex-wrap gap-x-3 gap-y-1">
            {toast.links.map((l) => (
              <a
                key={l.href}
                href={l.href}
                className="font-medium text-indigo-600 underline underline-offset-2 hover:text-indigo-500 dark:text-indigo-400"
              >
                {l.label}
              </a>
            ))}
          </p>
        )}
      </div>
      <button
        type="button"
        aria-label="Dismiss"
        className="-m-1 rounded-md p-1 text-zinc-400 hover:bg-zinc-100 hover:text-zinc-700 dark:hover:bg-zinc-800 dark:hover:text-zinc-200"
        onClick={() => toasts.dismiss(toast.id)}
      >
        <IconX />
      </button>
    </div>
  );
}
