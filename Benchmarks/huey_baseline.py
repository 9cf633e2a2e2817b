"""Huey baseline for scripts/bench.sh (see docs/benchmarks.md).

    PYTHONPATH=.tools/python:Benchmarks python3 Benchmarks/huey_baseline.py --enqueue-jobs 5000 --e2e-jobs 1000

Measures, each on a fresh file-backed SQLite database in a temporary directory:

1. enqueue: one producer calls a no-op task N times (each call is one `SqliteHuey` enqueue,
   one committed INSERT); rate = N / elapsed wall-clock time. Run twice: with SQLite
   `synchronous=NORMAL` (the same durability our store uses: WAL + NORMAL, survives a process
   kill) and with huey's shipped default (no pragma, i.e. SQLite's FULL).
2. e2e: `huey_consumer huey_baseline.huey -k process -w 2` (2 worker processes) is started and
   warmed up (one task run to completion); then one producer enqueues N no-op tasks and we wait
   for all N results. Each task returns `time.time()` when it runs; the figure is
   N / (latest task execution time - time just before the first enqueue). Consumer polling is
   set generously (`-d 0.001 -m 0.01`) so huey never sleeps long on an empty queue.

Prints `RESULT key=value ...` lines for scripts/bench.sh.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

from huey import SqliteHuey
from huey.storage import SqliteStorage


class NormalSyncStorage(SqliteStorage):
    """SqliteStorage with `PRAGMA synchronous=NORMAL`, matching jobserver's store."""

    def _create_connection(self):
        conn = super()._create_connection()
        conn.execute('pragma synchronous=1')
        return conn


class BenchHuey(SqliteHuey):
    storage_class = NormalSyncStorage


def make_huey(filename, matched_durability=True):
    cls = BenchHuey if matched_durability else SqliteHuey
    return cls('bench', filename=filename)


# The consumer imports this module and uses this instance (HUEY_BENCH_DB names the database).
huey = make_huey(os.environ.get('HUEY_BENCH_DB', os.path.join(tempfile.gettempdir(), 'huey-bench-unused.db')))


# huey prefixes task names with the defining module, so the script re-imports itself as
# `huey_baseline` (see the bottom) to give producer and consumer the same name.
TASK_NAME = 'noop'


@huey.task(name=TASK_NAME)
def noop():
    return time.time()


def bind(instance):
    """A no-op task bound to another Huey instance (same task name as `noop`)."""
    @instance.task(name=TASK_NAME)
    def task():
        return time.time()
    return task


def measure_enqueue(n, directory, matched_durability):
    name = 'enqueue-%s.db' % ('normal' if matched_durability else 'default')
    instance = make_huey(os.path.join(directory, name), matched_durability)
    task = bind(instance)
    task()  # create the connection and tables outside the timed part
    instance.flush()
    start = time.perf_counter()
    for _ in range(n):
        task()
    elapsed = time.perf_counter() - start
    assert instance.pending_count() == n, instance.pending_count()
    return n / elapsed, elapsed


def measure_e2e(n, directory):
    db = os.path.join(directory, 'e2e.db')
    env = dict(os.environ, HUEY_BENCH_DB=db)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [os.path.dirname(os.path.abspath(__file__)), env.get('PYTHONPATH')]))
    instance = make_huey(db)
    task = bind(instance)
    task()  # create tables
    instance.flush()
    consumer = subprocess.Popen(
        [sys.executable, '-m', 'huey.bin.huey_consumer', 'huey_baseline.huey',
         '-k', 'process', '-w', '2', '-d', '0.001', '-m', '0.01', '-l', os.path.join(directory, 'consumer.log')],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        warm = task()
        if warm.get(blocking=True, timeout=30) is None:
            raise RuntimeError('huey consumer did not start')
        start = time.time()
        results = [task() for _ in range(n)]
        enqueued = time.time() - start
        deadline = time.time() + 600
        while instance.result_count() < n:
            if time.time() > deadline:
                raise RuntimeError('huey: only %d/%d results' % (instance.result_count(), n))
            time.sleep(0.005)
        observed = time.time() - start
        finished = max(r.get() for r in results)
        elapsed = finished - start
        return n / elapsed, elapsed, observed, enqueued
    finally:
        consumer.terminate()  # by pid; the consumer stops its own worker processes
        try:
            consumer.wait(timeout=15)
        except subprocess.TimeoutExpired:
            consumer.kill()
            consumer.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--enqueue-jobs', type=int, default=5000)
    parser.add_argument('--e2e-jobs', type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='huey-bench-') as directory:
        rate, elapsed = measure_enqueue(args.enqueue_jobs, directory, matched_durability=True)
        print('huey enqueue (synchronous=NORMAL): %d tasks in %.3f s = %.1f tasks/s' % (args.enqueue_jobs, elapsed, rate))
        default_rate, default_elapsed = measure_enqueue(args.enqueue_jobs, directory, matched_durability=False)
        print('huey enqueue (shipped default, synchronous=FULL): %d tasks in %.3f s = %.1f tasks/s'
              % (args.enqueue_jobs, default_elapsed, default_rate))
        print('RESULT huey_enqueue_per_s=%.1f huey_enqueue_default_per_s=%.1f jobs=%d' % (rate, default_rate, args.enqueue_jobs))
        sys.stdout.flush()
        e2e_rate, e2e_elapsed, observed, enqueued = measure_e2e(args.e2e_jobs, directory)
        print('huey e2e (2 worker processes): %d tasks, first enqueue -> last execution %.3f s = %.1f tasks/s '
              '(all results seen after %.3f s; enqueueing took %.3f s)' % (args.e2e_jobs, e2e_elapsed, e2e_rate, observed, enqueued))
        print('RESULT huey_e2e_per_s=%.1f jobs=%d seconds=%.3f' % (e2e_rate, args.e2e_jobs, e2e_elapsed))


if __name__ == '__main__':
    import huey_baseline
    huey_baseline.main()
