"""Four CPU devices for the whole suite, so that pmap'd code runs as it does on a GPU box.

Set before anything imports JAX (pytest loads this file first); single-device code is unaffected.
"""

import os

_FLAG = '--xla_force_host_platform_device_count=4'
if _FLAG.split('=')[0] not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = f'{os.environ.get("XLA_FLAGS", "")} {_FLAG}'.strip()
