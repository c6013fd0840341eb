"""Shared command line of the benchmark's echo servers."""
import argparse


def parse(description):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7000)
    return ap.parse_args()
