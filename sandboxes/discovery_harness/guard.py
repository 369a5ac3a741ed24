"""Same-process defences for timing tasks: an audit hook, an integrity snapshot, and thread/GC checks.

The candidate runs in the evaluator's process (see worker.py: on its own thread). The Guard
 - snapshots the identity of every timer, torch function and harness function before the candidate
   is imported, and reports any that was replaced ("timer patched: time.perf_counter");
 - installs a PEP 578 audit hook that, while armed, refuses the ways across from candidate code to
   the harness's state: gc object walks, other threads' frames, sys._getframe reaching a trusted
   frame, tracing, rewriting a trusted function's code, writing the task folder, opening anything
   under /proc (but a few harmless files torch reads), starting a process, native code through
   ctypes or a native extension from outside the installation, and (off the main thread) reading
   the task's private data; paths are compared after resolving symlinks, `//` and the cwd;
 - lets torch.compile and Triton compile (toolchain.py: their compilers only, called from their own
   code, with checked arguments and environment; the residual risk is stated there);
 - records every refusal, so a candidate that swallows the PermissionError is still failed;
 - deny_reads() adds a kernel rule (Landlock) on the candidate thread, inherited by any process it
   manages to start, so reads the audit hook cannot see (C-level opens such as torch.from_file, a
   child process) still cannot reach the private data.
In-process defences raise the bar; they are not a proof. The host-side wall-time check and
read-only mounts are the backstop.
"""

from __future__ import annotations

import _thread
import builtins
import ctypes
import dataclasses
import gc
import logging
import math
import os
import posixpath
import sys
import threading
import time
import types

from discovery_harness.errors import CandidateError
from discovery_harness.toolchain import (
    NATIVE_EVENTS,
    PROC_READS,
    PROCESS_EVENTS,
    Toolchain,
    prepare_environment,
    steering,
)

# Captured when the harness is imported, before any candidate code can run.
_get_ident = _thread.get_ident
_active_count = threading.active_count
_abspath = os.path.abspath
_realpath = os.path.realpath
_normpath = os.path.normpath
_join = os.path.join
_getcwd = os.getcwd
_fsdecode = os.fsdecode
_listdir = os.listdir
_isenabled = gc.isenabled
_getattr = builtins.getattr
_id = builtins.id
_getframe = sys._getframe
_fields = dataclasses.fields
_MISSING = object()

_ALWAYS_BLOCKED = {
    "gc.get_objects": "gc.get_objects() walks every object, including the harness's expected outputs",
    "gc.get_referrers": "gc.get_referrers() reaches the harness's objects",
    "gc.get_referents": "gc.get_referents() reaches the harness's objects",
    "sys._current_frames": "sys._current_frames() reaches the harness thread's frames",
    "sys.settrace": "sys.settrace() observes the harness's frames",
    "sys.setprofile": "sys.setprofile() observes the harness's frames",
    # A child process has no audit hook: it could read anything the hook protects.
    "subprocess.Popen": "starting a process (subprocess): child processes escape the harness's checks",
    "os.exec": "replacing the process (os.exec*) is off limits",
    "os.posix_spawn": "starting a process (os.posix_spawn): child processes escape the harness's checks",
    "os.fork": "forking (os.fork): child processes escape the harness's checks",
    "os.forkpty": "forking (os.forkpty): child processes escape the harness's checks",
    "os.system": "starting a process (os.system): child processes escape the harness's checks",
    "pty.spawn": "starting a process (pty.spawn): child processes escape the harness's checks",
    # ctypes reads and writes raw memory and calls native code, which no audit hook sees.
    "ctypes.dlopen": "ctypes.dlopen: native code is off limits",
    "ctypes.dlsym": "ctypes.dlsym: native code is off limits",
    "ctypes.dlsym/handle": "ctypes.dlsym: native code is off limits",
    "ctypes.cdata": "ctypes raw memory access (from_address) is off limits",
    "ctypes.cdata/buffer": "ctypes raw memory access (from_buffer) is off limits",
    "ctypes.addressof": "ctypes raw memory access (addressof) is off limits",
    "ctypes.string_at": "ctypes raw memory access (string_at) is off limits",
    "ctypes.wstring_at": "ctypes raw memory access (wstring_at) is off limits",
    "ctypes.PyObj_FromPtr": "ctypes raw memory access (PyObj_FromPtr) is off limits",
    "ctypes.call_function": "ctypes foreign function calls are off limits",
    # Both would let a path checked by the hook name another file by the time it is opened.
    "os.chdir": "changing the working directory is off limits",
    "os.symlink": "creating symlinks is off limits",
}
_PATH_EVENTS = {
    "os.remove",
    "os.rename",
    "os.truncate",
    "os.chmod",
    "os.chown",
    "os.rmdir",
    "os.mkdir",
    "os.symlink",
    "os.link",
    "os.utime",
    "shutil.rmtree",
    "shutil.move",
    "shutil.copyfile",
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_WATCHED_EVENTS = (
    set(_ALWAYS_BLOCKED)
    | _PATH_EVENTS
    | {
        "open",
        "sys._getframe",
        "object.__setattr__",
        "import",
        "os.putenv",
        "os.unsetenv",
    }
)
_ALLOWANCE_EVENTS = PROCESS_EVENTS | NATIVE_EVENTS
_PROC = "/proc"
_CODE_ATTRS = ("__code__", "__defaults__", "__kwdefaults__")
# torch rebinds these itself on a lazy import (torch._dynamo wraps manual_seed on an optimiser's
# first step); importing torch._dynamo up front to freeze them would cost a second per evaluation.
_LAZY_REBOUND = frozenset({"torch.manual_seed"})


def _is_timer(label: str) -> bool:
    """Whether a patched attribute is a clock or a CUDA timing primitive."""
    return label.startswith("time.") or "Event" in label or "synchronize" in label


def _module_entries(module: types.ModuleType, prefix: str, public_only: bool) -> list[tuple]:
    """(owner, name, value, label) for each callable or class a module holds."""
    entries = []
    for name, value in list(vars(module).items()):
        if name.startswith("__") or (public_only and name.startswith("_")):
            continue
        if callable(value) or isinstance(value, types.ModuleType):
            entries.append((module, name, value, f"{prefix}.{name}"))
    return entries


def _class_entries(cls: type, label: str) -> list[tuple]:
    """(owner, name, value, label) for every attribute a class defines itself."""
    return [(cls, name, value, f"{label}.{name}") for name, value in list(vars(cls).items())]


def _torch_entries() -> list[tuple]:
    """The torch surface the harness relies on for timing and comparison."""
    import torch
    import torch.nn.functional as functional

    entries = _module_entries(torch, "torch", public_only=True)
    entries += _class_entries(torch.Tensor, "torch.Tensor")
    entries += _class_entries(torch._C.TensorBase, "torch.Tensor")
    entries += _module_entries(functional, "torch.nn.functional", public_only=True)
    entries += _module_entries(torch.autograd, "torch.autograd", public_only=True)
    for name in (
        "synchronize",
        "Event",
        "Stream",
        "current_stream",
        "default_stream",
        "is_available",
        "set_stream",
        "stream",
        "empty_cache",
    ):
        if hasattr(torch.cuda, name):
            entries.append((torch.cuda, name, getattr(torch.cuda, name), f"torch.cuda.{name}"))
    entries += _class_entries(torch.cuda.Event, "torch.cuda.Event")
    return entries


def _trusted_entries(modules: list[types.ModuleType]) -> tuple[list[tuple], list[types.FunctionType]]:
    """Every attribute of the trusted modules, and every function whose code must stay the same."""
    entries: list[tuple] = []
    functions: list[types.FunctionType] = []
    for module in modules:
        label = getattr(module, "__name__", "task_evaluate")
        for name, value in list(vars(module).items()):
            if name.startswith("__"):
                continue
            entries.append((module, name, value, f"{label}.{name}"))
            if isinstance(value, types.FunctionType):
                functions.append(value)
            elif isinstance(value, type) and getattr(value, "__module__", None) == module.__name__:
                for attr, member in list(vars(value).items()):
                    entries.append((value, attr, member, f"{label}.{name}.{attr}"))
                    if isinstance(member, (staticmethod, classmethod)):
                        member = member.__func__
                    if isinstance(member, types.FunctionType):
                        functions.append(member)
    return entries, functions


def _is_frozen_instance(value: object) -> bool:
    """Whether value is an instance (not the class) of a frozen dataclass."""
    params = getattr(type(value), "__dataclass_params__", None)
    return params is not None and params.frozen and not isinstance(value, type)


def _frozen_objects(roots: list[tuple[object, str]]) -> list[tuple[object, str]]:
    """Every frozen dataclass instance among roots and inside them (fields, tuples, lists), labelled.

    A frozen dataclass refuses `task.x = y`, but `object.__setattr__(task, "x", y)` and
    `vars(task)["x"] = y` still change it, and neither raises an audit event for an instance: the
    Guard snapshots their fields and compares them at every check, which runs after each call
    into the candidate and so before the harness reads the task again. Such instances are the
    task's declaration (its reference, sizes, bounds).
    """
    found: list[tuple[object, str]] = []
    seen: set[int] = set()
    stack = list(reversed(roots))
    while stack:
        value, label = stack.pop()
        if _id(value) in seen:
            continue
        seen.add(_id(value))
        if isinstance(value, (tuple, list)):
            stack.extend((item, f"{label}[{i}]") for i, item in enumerate(value))
        elif _is_frozen_instance(value):
            found.append((value, label))
            stack.extend((_getattr(value, f.name), f"{label}.{f.name}") for f in _fields(value))
    return found


def _fields_of(value: object) -> dict[str, object]:
    """An instance's attributes as stored (its __dict__, or its dataclass fields when it has slots)."""
    stored = _getattr(value, "__dict__", None)
    if stored is not None:
        return dict(stored)
    return {f.name: _getattr(value, f.name, _MISSING) for f in _fields(value)}


def _inside(path: str, root: str) -> bool:
    """Whether path is root or lies beneath it (both absolute and normalised)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def _spellings(raw: str) -> tuple[str, str]:
    """The path as written (made absolute, `//` collapsed) and with symlinks resolved.

    Both are checked: the lexical form cannot be fooled by a patched os.lstat, the resolved one
    catches /proc/self/root/..., symlinks and `..` through them.
    """
    try:
        lexical = _normpath(_join(_getcwd(), raw))
    except OSError:  # a deleted cwd
        lexical = _normpath(raw)
    if lexical.startswith("//"):  # POSIX keeps a leading //; Linux treats it as /
        lexical = "/" + lexical.lstrip("/")
    try:
        resolved = _realpath(raw)
    except (OSError, ValueError):
        resolved = lexical
    return lexical, resolved


def native_thread_count() -> int:
    """Threads of this process, native ones included (Linux); -1 where /proc is missing."""
    try:
        return len(_listdir("/proc/self/task"))
    except OSError:
        return -1


class Guard:
    """Arms the audit hook and holds the integrity snapshot for one evaluation."""

    def __init__(
        self,
        trusted_modules: list[types.ModuleType],
        task_dir: str,
        private_dirs: tuple[str, ...] = (),
        extra_trusted: tuple[str, ...] = (),
        compilers: bool = True,
        frozen: tuple[tuple[object, str], ...] = (),
    ) -> None:
        """frozen: (object, label) pairs whose fields must not change, besides those the modules hold."""
        import torch

        self._modules = list(trusted_modules)
        self._task_dirs = tuple({_abspath(task_dir), _realpath(task_dir)})
        self._private = tuple({form for p in private_dirs for form in (_abspath(p), _realpath(p))})
        if compilers:
            prepare_environment()
        self._toolchain = Toolchain(self._task_dirs, self._private)
        self._compilers = compilers
        self._trusted_files = {f for path in extra_trusted for f in (path, _abspath(path))}
        for module in self._modules:
            path = getattr(module, "__file__", None)
            if path:
                self._trusted_files.update({path, _abspath(path)})
        main = sys.modules.get("__main__")
        if main is not None and getattr(main, "__file__", None):
            self._trusted_files.update({main.__file__, _abspath(main.__file__)})
        entries = [(m, n, v, f"{m.__name__}.{n}") for m in (time,) for n, v in vars(m).items() if callable(v)]
        entries += _module_entries(threading, "threading", public_only=True)
        entries += _module_entries(gc, "gc", public_only=True)
        entries += _module_entries(math, "math", public_only=True)
        # The hook resolves paths with these; a candidate that patches them is reported.
        entries += _module_entries(os, "os", public_only=True)
        entries += _module_entries(posixpath, "posixpath", public_only=True)
        entries += [(builtins, n, v, f"builtins.{n}") for n, v in vars(builtins).items() if callable(v)]
        entries += [entry for entry in _torch_entries() if entry[3] not in _LAZY_REBOUND]
        trusted, functions = _trusted_entries(self._modules)
        self._entries = entries + trusted
        self._code = [
            (f, _getattr(f, a), f"{f.__module__}.{f.__qualname__}.{a}")
            for f in functions
            for a in _CODE_ATTRS
        ]
        self._sys_modules = [
            (name, module)
            for name, module in sys.modules.items()
            if module in self._modules or name in ("time", "torch", "threading", "gc")
        ]
        self._protected_functions = {_id(f) for f in functions}
        held = [
            (v, f"{getattr(m, '__name__', 'task')}.{n}") for m in self._modules for n, v in vars(m).items()
        ]
        self._frozen = [(obj, label, _fields_of(obj)) for obj, label in _frozen_objects([*frozen, *held])]
        self._violations: list[str] = []
        self._state = {"armed": False, "main": _get_ident()}
        self._threads = _active_count()
        self._gc_was_enabled = _isenabled()
        sys.addaudithook(self._make_hook())
        self._torch = torch

    @property
    def trusted_files(self) -> frozenset[str]:
        """Files whose frames the candidate may not reach."""
        return frozenset(self._trusted_files)

    def _make_hook(self):
        """The audit hook; it reads only its closure so patching module globals cannot disarm it."""
        state, violations, trusted = self._state, self._violations, self._trusted_files
        task_dirs, private, protected = self._task_dirs, self._private, self._protected_functions
        watched, always = _WATCHED_EVENTS, _ALWAYS_BLOCKED
        get_ident, abspath, id_, fsdecode, spellings = _get_ident, _abspath, _id, _fsdecode, _spellings
        inside, getframe, toolchain = _inside, _getframe, self._toolchain
        allowance = _ALLOWANCE_EVENTS if self._compilers else frozenset()

        def check_allowance(event: str, args: tuple) -> str | None:
            """None when torch/Triton may do this (toolchain.py), else why not."""
            try:
                if event == "import":
                    return toolchain.native_import(args[1], getframe(2), allow_caches=bool(allowance))
                return toolchain.refusal(event, args, getframe(2))
            except Exception as exc:  # noqa: BLE001 - a check that breaks refuses
                return f"the check failed: {exc!r}"

        def refuse(reason: str) -> None:
            violations.append(reason)
            raise PermissionError(f"refused by the evaluation harness: {reason}")

        def hook(event: str, args: tuple) -> None:
            if event not in watched or not state["armed"]:
                return
            if event in always:
                if event in allowance:
                    why = check_allowance(event, args)
                    if why is None:
                        return
                    refuse(f"{always[event]} ({why})")
                refuse(always[event])
            elif event == "import":
                # A native extension is native code: only the installation's (and compiled kernels).
                if len(args) >= 3 and args[2] is None and isinstance(args[1], str):
                    why = check_allowance(event, args)
                    if why is not None:
                        refuse(f"importing native code is off limits ({why})")
            elif event in ("os.putenv", "os.unsetenv"):
                # Children inherit the environment: the variables that steer a compiler stay as they were.
                key = fsdecode(args[0]) if args and isinstance(args[0], (str, bytes)) else ""
                if allowance and steering(key):
                    refuse(f"setting the environment variable {key} is off limits (it steers the compilers)")
            elif event == "sys._getframe":
                code = args[0].f_code if args and args[0] is not None else None
                if code is not None and (code.co_filename in trusted or abspath(code.co_filename) in trusted):
                    refuse(
                        f"frame access: sys._getframe reached the harness frame {code.co_name} "
                        f"in {os.path.basename(code.co_filename)}"
                    )
            elif event == "object.__setattr__":
                if args and args[1] in _CODE_ATTRS and id_(args[0]) in protected:
                    refuse(f"harness patched: {args[1]} of a harness function was reassigned")
            else:
                raw = args[0] if args else None
                if isinstance(raw, bytes):
                    raw = fsdecode(raw)
                if not isinstance(raw, str):
                    return  # an fd: it came from an open this hook already checked
                paths = spellings(raw)
                writes = (
                    event != "open"
                    or (isinstance(args[1], str) and any(c in args[1] for c in "wax+"))
                    or (args[1] is None and isinstance(args[2], int) and args[2] & _WRITE_FLAGS)
                )
                if event == "open" and any(inside(path, _PROC) for path in paths):
                    if writes or not all(path in PROC_READS for path in paths):
                        refuse(f"opened {raw}: /proc (process memory, other roots, fds) is off limits")
                if writes and any(inside(path, root) for path in paths for root in task_dirs):
                    refuse(f"{event} on {raw}: the task folder is read-only")
                if event != "open" or get_ident() == state["main"]:
                    return
                if any(inside(path, root) for path in paths for root in private):
                    refuse(f"read {raw}: the task's data reaches the candidate only through the harness")
                # os.open's audit event omits dir_fd, so an fd of a folder holding the data would let
                # a relative open reach it unseen: refuse opening such folders with os.open.
                if args[1] is None and any(inside(root, path) for path in paths for root in private):
                    refuse(f"read {raw}: a folder holding the task's data may not be opened as an fd")

        return hook

    def arm(self) -> None:
        """Start refusing; also stop the cyclic GC so no finaliser of the candidate runs on our stack."""
        gc.disable()
        self._state["armed"] = True

    def disarm(self) -> None:
        """Stop refusing (end of the evaluation)."""
        self._state["armed"] = False
        if self._gc_was_enabled:
            gc.enable()

    def violations(self) -> list[str]:
        """Refusals recorded so far."""
        return list(self._violations)

    def check(self, when: str) -> None:
        """Raise CandidateError when the candidate broke a rule or patched anything watched."""
        if self._violations:
            raise CandidateError(f"{self._violations[0]} (during {when})")
        for owner, name, value, label in self._entries:
            # The owner's own namespace, not getattr: descriptors (classmethods) bind anew on each access.
            if vars(owner).get(name, _MISSING) is not value:
                kind = (
                    "timer patched"
                    if _is_timer(label)
                    else (
                        "harness patched"
                        if owner in self._modules or label.startswith("discovery_harness")
                        else "library patched"
                    )
                )
                raise CandidateError(f"{kind}: {label} (during {when})")
        for function, value, label in self._code:
            if _getattr(function, label.rsplit(".", 1)[1], _MISSING) is not value:
                raise CandidateError(f"harness patched: {label} (during {when})")
        for obj, label, fields in self._frozen:
            now = _fields_of(obj)
            for name in fields.keys() | now.keys():
                if now.get(name, _MISSING) is not fields.get(name, _MISSING):
                    raise CandidateError(f"harness patched: {label}.{name} (during {when})")
        for name, module in self._sys_modules:
            if sys.modules.get(name) is not module:
                raise CandidateError(f"harness patched: sys.modules[{name!r}] replaced (during {when})")
        if self._state["armed"] and _isenabled():
            raise CandidateError(f"the garbage collector was re-enabled (during {when})")
        if _active_count() > self._threads:
            raise CandidateError(
                f"thread started by the candidate: {_active_count()} Python threads, expected "
                f"{self._threads} (during {when}); work must finish inside the call, on the calling thread"
            )


# Landlock (Linux >= 5.13): the syscall numbers are shared by x86_64 and arm64.
_SYS_LANDLOCK_CREATE_RULESET, _SYS_LANDLOCK_ADD_RULE, _SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
_LANDLOCK_ACCESS_FS_READ_FILE = 1 << 2
_LANDLOCK_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel's struct landlock_path_beneath_attr is packed
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _readable_roots(blocked: tuple[str, ...]) -> list[str]:
    """Paths whose subtrees cover every file except those beneath blocked (resolved) folders.

    Landlock only grants, so the way to deny one folder is to grant each sibling along the path
    from / down to it. An entry that resolves into or above a blocked folder is never granted.
    """
    roots: list[str] = []

    def walk(directory: str) -> None:
        for name in sorted(_listdir(directory)):
            path = _join(directory, name)
            real = _realpath(path)
            if any(_inside(real, b) for b in blocked):
                continue
            if any(_inside(b, real) for b in blocked):
                if real == path:  # the way down (a link to an ancestor is simply not granted)
                    walk(path)
                continue
            roots.append(path)

    walk("/")
    return roots


def deny_reads(private_dirs: tuple[str, ...]) -> str:
    """Forbid the calling thread, and processes it starts, to read files beneath private_dirs.

    Call it on the candidate thread before any candidate code runs (Landlock binds the calling
    thread). Returns "" when in force, else why not (old kernel, a seccomp filter refusing the
    syscalls); the audit hook still applies either way.
    """
    blocked = tuple(_realpath(p) for p in private_dirs)
    if not blocked:
        return ""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    attr = _RulesetAttr(_LANDLOCK_ACCESS_FS_READ_FILE)
    ruleset = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.sizeof(attr), 0)
    if ruleset < 0:
        return f"landlock unavailable: {os.strerror(ctypes.get_errno())}"
    try:
        try:
            roots = _readable_roots(blocked)
        except OSError as exc:
            return f"landlock not applied: cannot list the folders above the data ({exc})"
        for root in roots:
            try:
                fd = os.open(root, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # vanished or unreachable: nothing to grant
            try:
                rule = _PathBeneathAttr(_LANDLOCK_ACCESS_FS_READ_FILE, fd)
                libc.syscall(
                    _SYS_LANDLOCK_ADD_RULE, ruleset, _LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), 0
                )
            finally:
                os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return f"landlock not applied: no_new_privs refused ({os.strerror(ctypes.get_errno())})"
        if libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
            return f"landlock not applied: {os.strerror(ctypes.get_errno())}"
    finally:
        os.close(ruleset)
    logging.getLogger(__name__).debug("landlock: reads beneath %s denied on this thread", blocked)
    return ""
