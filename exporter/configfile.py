"""Reading the files an operator names — config.yaml, the web config, key and certificate files — safely.

A path on the command line can name anything. Each case below was a hang, a traceback or gigabytes before:

- a FIFO (`--config /tmp/fifo`) blocked `open()` forever; it is now opened without blocking and refused, like a
  device (`/dev/zero` used to be read until `MemoryError`, 3.6 GB later) or a directory: only regular files;
- a file is read up to a size cap, one byte more tells it is too big, so a 50 MB list cannot be parsed for minutes;
- text must be UTF-8 (a leading byte-order mark is dropped): a Latin-1 file is refused with the byte's offset;
- YAML is parsed by a SafeLoader that refuses duplicate keys (YAML would let the last one win silently, and a
  second `reserve:` far down the file would quietly change the budget), refuses aliases that expand to a huge
  tree ("billion laughs": 9 levels of 10 aliases is a billion nodes) or that refer to themselves, and turns
  PyYAML's deep-nesting RecursionError and Python's 4300-digit integer limit into one line.

Every refusal is a `ConfigError(key, problem)` naming the flag or key that named the file, and never quotes the
file's content (a key file's content is a secret; PyYAML's error snippets are left out for the same reason).
"""

from __future__ import annotations

import os
import stat
from typing import Any

import yaml

from exporter.errors import ConfigError

CONFIG_LIMIT = 1024 * 1024
"""Bytes a YAML configuration may have: 100,000 job ids fit; a 50 MB list does not get parsed."""

SECRET_LIMIT = 64 * 1024
"""Bytes a key file may have; an API key is 40 characters, a PEM key a few kilobytes."""

ALIAS_EXPANSION_LIMIT = 10_000
"""Nodes that aliases may add to a document once expanded. A config that reuses a section in a few accounts
adds tens; a billion-laughs bomb adds billions."""


def read_bytes(path: str | os.PathLike[str], key: str, *, limit: int) -> bytes:
    """The content of the regular file at `path`, at most `limit` bytes, or a ConfigError naming `key`."""
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise ConfigError(key, f"cannot read {path}: {error.strerror or error}") from None
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(key, f"cannot read {path}: {_kind(mode)}, not a regular file")
        with open(descriptor, "rb", closefd=False) as file:
            data = file.read(limit + 1)
    except OSError as error:
        raise ConfigError(key, f"cannot read {path}: {error.strerror or error}") from None
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise ConfigError(key, f"cannot read {path}: larger than {limit} bytes")
    return data


CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


def read_pem(key: str, path: str | os.PathLike[str], marker: bytes, what: str) -> bytes:
    """A PEM file that holds `marker`: OpenSSL's own errors ('PEM lib') do not say which file is wrong."""
    data = read_bytes(path, key, limit=CONFIG_LIMIT)
    if marker not in data:
        raise ConfigError(key, f"no PEM {what} in {path}")
    return data


def read_text(path: str | os.PathLike[str], key: str, *, limit: int) -> str:
    """The file as UTF-8 text, without a leading byte-order mark (Windows editors write one)."""
    data = read_bytes(path, key, limit=limit)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(
            key, f"cannot read {path}: not UTF-8 text (byte {error.start} is 0x{data[error.start]:02x})"
        ) from None


def load_yaml(path: str | os.PathLike[str], key: str, *, limit: int = CONFIG_LIMIT) -> Any:
    """The one YAML document in the file, checked as the module docstring says."""
    text = read_text(path, key, limit=limit)
    loader: StrictLoader | None = None
    try:
        loader = StrictLoader(text)  # its reader already refuses control characters
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, key, path)
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        raise ConfigError(key, f"invalid YAML in {path}{_yaml_position(error)}") from None
    except RecursionError:
        raise ConfigError(key, f"invalid YAML in {path}: nested too deeply") from None
    except ValueError:  # int() of more than 4300 digits (sys.get_int_max_str_digits)
        raise ConfigError(key, f"invalid YAML in {path}: a number has too many digits") from None
    finally:
        if loader is not None:
            loader.dispose()


class StrictLoader(yaml.SafeLoader):
    """A SafeLoader (no arbitrary objects) that refuses duplicate keys in a mapping.

    Only a mapping's own keys are compared: a key that overrides one brought in by a merge (`<<: *defaults`) is
    what merges are for.
    """


def _construct_mapping_once(loader: StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            key = loader.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
    loader.flatten_mapping(node)
    return loader.construct_mapping(node)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_once)


def _check_expansion(root: yaml.Node, key: str, path: str | os.PathLike[str]) -> None:
    """Refuse a node graph whose expanded tree is much larger than the document, or that contains itself."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in active:
            raise ConfigError(key, f"invalid YAML in {path}: an alias refers to a node that contains it")
        active.add(id(node))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(name) + size(value) for name, value in node.value)
        active.discard(id(node))
        sizes[id(node)] = total
        if total - len(sizes) > ALIAS_EXPANSION_LIMIT:
            raise ConfigError(
                key,
                f"invalid YAML in {path}: aliases expand to more than {ALIAS_EXPANSION_LIMIT} extra nodes",
            )
        return total

    size(root)


def _yaml_position(error: yaml.YAMLError) -> str:
    """` at line L, column C: problem`, leaving out PyYAML's snippet of the file, which may hold a secret."""
    if isinstance(error, yaml.reader.ReaderError):
        return f" at character {error.position + 1}: {error.reason}"
    if not isinstance(error, yaml.MarkedYAMLError) or error.problem_mark is None:
        return ""
    mark = error.problem_mark
    return f" at line {mark.line + 1}, column {mark.column + 1}: {error.problem}"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"
