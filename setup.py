"""Only here because cffi's build hook needs setuptools' cffi_modules."""

from setuptools import setup

setup(cffi_modules=["csrc/build_helper.py:ffibuilder"])
