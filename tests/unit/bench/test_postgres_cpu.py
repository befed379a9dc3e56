"""bench-pay counts the CPU of its own databases' backends, not every PostgreSQL process."""

from qrpay_tools.bench.harness import cpu_spent, serves

OURS = {"qrpay_bench_eda_1a2b", "qrpay_bench_queue_3c4d"}


def test_only_the_benchmarks_backends_and_the_servers_writers_are_counted() -> None:
    assert serves("postgres: 15/main: postgres qrpay_bench_eda_1a2b 127.0.0.1(5) idle ", OURS)
    assert serves("postgres: 15/main: walwriter ", OURS)
    assert serves("postgres: 15/main: checkpointer", OURS)
    assert not serves("postgres: 15/main: postgres qrpay_test_other 127.0.0.1(6) idle", OURS)
    assert not serves("postgres: 15/main: autovacuum launcher", OURS)
    assert not serves("/usr/lib/postgresql/15/bin/postgres -D /var/lib", OURS)
    assert not serves("python -m qrpay_bench_eda_1a2b", OURS)


def test_a_process_gone_between_samples_is_left_out_and_a_new_one_counts_whole() -> None:
    assert cpu_spent({1: 2.0, 2: 5.0}, {1: 3.5, 3: 0.25}) == 1.75
