"""The reference of the SMS benchmark: a bare smpplib client, as its README shows it used,
with the same window, sending the same batch to the same SMSC and counting receipts
(answered by smpplib, stored nowhere). Run as its own process so its CPU is its own:

    python tests/bench/bare_smpp.py --port 2775 --password secret --count 20000 --window 50

Prints one JSON line: seconds to the last submit_sm_resp and to the last receipt, CPU
seconds, accepted and receipts."""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import smpplib.client
import smpplib.consts
import smpplib.exceptions


def destination(i: int) -> str:
    return f"7926{i:07d}"


def text(i: int) -> bytes:
    return f"Ваш код {i:06d}".encode("utf-16-be")


def run(args: argparse.Namespace) -> dict[str, float]:
    client = smpplib.client.Client("127.0.0.1", args.port, allow_unknown_opt_params=True)
    counts = {"in_flight": 0, "accepted": 0, "answered": 0, "receipts": 0}
    stamps = {"submitted": 0.0, "delivered": 0.0}

    def sent(pdu: smpplib.command.Command) -> None:
        counts["in_flight"] -= 1
        counts["answered"] += 1
        counts["accepted"] += int(pdu.status == smpplib.consts.SMPP_ESME_ROK)
        stamps["submitted"] = time.perf_counter()

    def received(pdu: smpplib.command.Command) -> None:
        counts["receipts"] += 1
        stamps["delivered"] = time.perf_counter()

    client.set_message_sent_handler(sent)
    client.set_message_received_handler(received)
    client.connect()
    client.bind_transceiver(system_id="callcard", password=args.password)
    started = time.perf_counter()
    cpu_started = time.process_time()
    next_index = 1
    while counts["receipts"] < args.count:
        while next_index <= args.count and counts["in_flight"] < args.window:
            client.send_message(
                source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                source_addr="Callcard",
                dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                destination_addr=destination(next_index),
                short_message=text(next_index),
                data_coding=smpplib.consts.SMPP_ENCODING_ISO10646,
                registered_delivery=1,
            )
            counts["in_flight"] += 1
            next_index += 1
        client.read_once()
    cpu = time.process_time() - cpu_started
    with contextlib.suppress(smpplib.exceptions.ConnectionError):
        client.unbind()  # the SMSC may close rather than answer: the run is measured
    client.disconnect()
    return {
        "submitted_s": stamps["submitted"] - started,
        "delivered_s": stamps["delivered"] - started,
        "cpu_s": cpu,
        "accepted": counts["accepted"],
        "receipts": counts["receipts"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--window", type=int, default=50)
    print(json.dumps(run(parser.parse_args())), flush=True)


if __name__ == "__main__":
    main()
