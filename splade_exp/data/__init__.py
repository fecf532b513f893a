"""Datasets: the embedded synthetic collection generator and BEIR-layout loading helpers."""
