/**
 * Runs tasks one at a time per key, in arrival order, within this process. Tasks of different
 * keys run concurrently. A task's failure does not stop the tasks queued after it.
 *
 * @module
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs `task` after every task queued earlier under `key` has settled; resolves or rejects as `task` does. */
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(task, task);
    // Settles (to undefined, never rejecting) once `result` has, and then forgets the key unless
    // another task was queued behind it meanwhile: one promise per task besides its result.
    const release = (): void => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
    const tail: Promise<void> = result.then(release, release);
    this.tails.set(key, tail);
    return result;
  }

  /** How many keys have a task queued or running (for tests and metrics). */
  get size(): number {
    return this.tails.size;
  }
}
