"""Random ids: hex of the asked length, never repeated, fresh in a forked child."""

from __future__ import annotations

import os
import threading

from faregate.ids import random_hex


def test_ids_are_hex_of_the_asked_length_and_never_repeat() -> None:
    ids = [random_hex(10) for _ in range(5_000)]  # past one buffer of randomness
    assert all(len(i) == 20 and int(i, 16) >= 0 for i in ids)
    assert len(set(ids)) == len(ids)
    assert len(random_hex(5_000)) == 10_000  # more than a buffer at once


def test_threads_never_get_the_same_bytes() -> None:
    got: list[str] = []

    def take() -> None:
        got.extend(random_hex(8) for _ in range(2_000))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == len(got) == 8_000


def test_a_forked_child_does_not_repeat_its_parents_next_ids() -> None:
    random_hex(4)  # the buffer now holds bytes the child must not reuse
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, random_hex(16).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    assert child != random_hex(16)
