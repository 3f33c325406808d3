// The page's own origin: `/ui/cluster` (who to follow; under `tally dev`, process state and
// load) and `tally dev`'s controls (`/dev/...`).

import type { Cluster, LoadState } from './types';

export class ApiError extends Error {}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: body === undefined ? undefined : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (err) {
    throw new ApiError(`cannot reach ${path}: ${(err as Error).message}`);
  }
  let data: unknown = null;
  const text = await res.text();
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  const error = data && typeof data === 'object' && 'error' in data ? String((data as { error: unknown }).error) : '';
  if (!res.ok || error) throw new ApiError(error || `${res.status} ${res.statusText || text.slice(0, 120)}`);
  return data as T;
}

export const getCluster = () => call<Cluster>('GET', '/ui/cluster');

export type MemberAction = 'kill' | 'restart' | 'pause' | 'resume' | 'cut' | 'heal';

export const memberAction = (name: string, action: MemberAction) =>
  call<Cluster>('POST', `/dev/members/${encodeURIComponent(name)}/${action}`);

/** A put through any member that takes it, or through `member` alone (once, cut off or not:
 * through a partitioned old leader it waits until that member gives up). */
export const put = (key: string, value: string, member = '') =>
  call<{ revision: number }>('POST', '/dev/put', member ? { key, value, member } : { key, value });

export const setLoad = (rate: number) => call<LoadState>('POST', '/dev/load', { rate });
