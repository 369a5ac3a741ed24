"""What the Guard lets torch.compile (inductor) and Triton do on a candidate's behalf.

Both compile inside the candidate's call. Measured on an H100 (torch 2.11, Triton 3.6) and here
(CPU inductor): inductor runs the C++ compiler, its ISA probe (`python -c` dlopen of a library in
its cache), `nvcc --version`, and ptxas from torch/bin; Triton runs `ldconfig -p`, `file -b
<python>` (platform.architecture), `nvidia-smi --query-gpu=...`, its bundled ptxas and the C
compiler (its launcher), and both import the modules they built. NVML is loaded through ctypes,
/proc/sys/kernel/random/boot_id is read. Everything else that starts a process or loads native
code stays refused. A process start or a ctypes call is let through only when
 - the innermost frame outside the standard library belongs to torch or Triton (a candidate's own
   `subprocess.run` or `ctypes.CDLL` is refused), and
 - for a process: the binary (resolved against the child's PATH, symlinks followed) is a C/C++
   compiler or nvcc found when the Guard was made, an NVIDIA tool bundled in torch/bin or Triton,
   `ldconfig -p`, `nvidia-smi` with query arguments only, `file -b PATH`, or this Python running
   exactly inductor's probe of a library in its cache (and no module it imports shadowed in its
   working folder); no argument names a plugin, wrapper, spec or response file, another prefix
   for the compiler's own programs, or a path in the task folder; and no variable that steers a
   compiler, the dynamic loader or Python (LD_*, CPATH, COMPILER_PATH, PATH, PYTHON*, CC, ...)
   differs from the evaluator's environment, but for library and module paths into the
   installation (the Guard also refuses setting such a variable while armed);
 - for ctypes.dlopen: a bare library name, or a file inside the torch/Triton/NVIDIA/Python
   installation, the system library folders or the inductor/Triton caches.
Native extension modules (import of a .so) may come only from the installation, or from the
compiler caches when torch or Triton imports them. The path primitives the checks use are
captured at import and checked for replacement before each check.

Residual risk, stated plainly: this is a tripwire, not a wall. A candidate that calls torch's or
Triton's build helpers itself (`CppCodeCache.load(source)`, `triton.runtime.build.compile_module_from_src`),
edits their configuration or module globals, forges a code object's file name (compile() or
marshal under torch's path) so its frame passes for torch's, or writes a shared object into a
compiler cache and has torch import it, gets native code of its choosing into this process, and
native code can defeat every in-process check. The argument and environment checks still keep
any such process to a compiler that runs no other program; the out-of-process backstops
(read-only mounts, Landlock on the candidate thread and its children, the host's wall-time
comparison, the plausibility flag and review before promotion) still hold. A task that does not
need compilers passes `compilers=False` (KernelTask, CandidateSession, Guard): all of the above
is then refused, extension modules from the caches included.
"""

from __future__ import annotations

import genericpath
import getpass
import importlib.util
import os
import posixpath
import re
import shutil
import site
import stat
import sys
import sysconfig
import tempfile

# The checks resolve paths with these; each is captured here and, with what it calls, compared
# before every check (a candidate that patched one would otherwise steer the check).
_realpath, _join, _isabs, _stat, _access, _listdir, _getcwd = (
    os.path.realpath,
    os.path.join,
    os.path.isabs,
    os.stat,
    os.access,
    os.listdir,
    os.getcwd,
)
_fsdecode, _S_ISREG = os.fsdecode, stat.S_ISREG
_PRISTINE = [
    (module, name, getattr(module, name))
    for module, names in (
        (
            os,
            (
                "stat",
                "lstat",
                "readlink",
                "access",
                "listdir",
                "getcwd",
                "fspath",
                "fsdecode",
                "fsencode",
                "path",
            ),
        ),
        (
            posixpath,
            ("os", "realpath", "join", "normpath", "isabs", "abspath", "islink", "split", "_joinrealpath"),
        ),
        (genericpath, ("os", "exists", "isdir", "isfile")),
        (stat, ("S_ISLNK", "S_ISREG", "S_ISDIR")),
    )
    for name in names
    if hasattr(module, name)
]

# Harmless /proc files that torch and Triton read (exact paths, read only): never /proc/self/...
PROC_READS = frozenset({"/proc/sys/kernel/random/boot_id", "/proc/cpuinfo", "/proc/meminfo"})
PROCESS_EVENTS = frozenset({"subprocess.Popen", "os.posix_spawn"})
NATIVE_EVENTS = frozenset(
    {
        "ctypes.dlopen",
        "ctypes.dlsym",
        "ctypes.dlsym/handle",
        "ctypes.cdata",
        "ctypes.cdata/buffer",
        "ctypes.addressof",
        "ctypes.string_at",
        "ctypes.wstring_at",
        "ctypes.call_function",
    }
)

_C_COMPILERS = ("cc", "gcc", "g++", "c++", "clang", "clang++")
# Arguments (or comma/space-separated pieces of one, as in -Wl,...) that make a compiler run or load
# other code: plugins, wrappers, another prefix for its own programs, spec and response files.
_REFUSED_ARG_PREFIXES = (
    "-wrapper",
    "--wrapper",
    "-fplugin",
    "-plugin",
    "--plugin",
    "-B",
    "-specs",
    "--specs",
    "@",
    "-Xclang",
    "-load",
    "-ccbin",
    "--compiler-bindir",
    "--options-file",
    "-optf",
    "-fuse-ld=",
    "--ld-path",
    "-iplugindir",
    "-run",
    "--run",
)
# nvidia-smi's query forms (Triton's testing.nvsmi, inductor's topology probe); never -pm, -lgc, ...
_NVSMI_ARG = re.compile(r"-i|\d+|--query-gpu=[\w.,]+|--format=[\w,]+|topo|-m|-L|--list-gpus")
_LINKER_B_FLAGS = frozenset({"-Bstatic", "-Bdynamic", "-Bsymbolic", "-Bsymbolic-functions"})
# Variables that steer a compiler, the dynamic loader or Python; a change to one is refused, except
# library and module paths whose every entry lies in the installation.
_STEERING_PREFIXES = ("LD_", "DYLD_", "GCC_", "PYTHON")
_STEERING = frozenset(
    {
        "PATH",
        "CPATH",
        "C_INCLUDE_PATH",
        "CPLUS_INCLUDE_PATH",
        "OBJC_INCLUDE_PATH",
        "LIBRARY_PATH",
        "COMPILER_PATH",
        "GCONV_PATH",
        "DEPENDENCIES_OUTPUT",
        "SUNPRO_DEPENDENCIES",
        "CC",
        "CXX",
    }
)
# inductor's probe that a library built with an ISA's flags loads (torch 2.11 and 2.13 spellings).
_PROBE = re.compile(
    r'\n?(?:import sys\nif sys\.platform != "linux":\n    import torch  # noqa: F401\n|import torch\n)'
    r'from ctypes import cdll\ncdll\.LoadLibrary\("([^"\\\n]+)"\)\n?'
)
_PIECES = re.compile(r"[,\s]+")
# Names the probe's child imports after its cwd joins sys.path: a file by one of them there would run.
_PROBE_IMPORTS = ("ctypes", "_ctypes", "struct", "_struct", "torch")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _tampered() -> str:
    """The first path primitive the checks rely on that was replaced ("" when none)."""
    for module, name, value in _PRISTINE:
        if vars(module).get(name) is not value:
            return f"{module.__name__}.{name}"
    return ""


def _which(name: str, path: str) -> str:
    """shutil.which with the captured primitives: the executable file named on PATH ("" when none)."""
    for folder in path.split(os.pathsep):
        candidate = _join(folder or ".", name)
        try:
            if _S_ISREG(_stat(candidate).st_mode) and _access(candidate, os.X_OK):
                return candidate
        except OSError:
            continue
    return ""


def _roots(paths) -> tuple[str, ...]:
    """Absolute and resolved spellings of the existing folders given."""
    out = set()
    for path in paths:
        if path and os.path.isabs(path):
            out.update({os.path.normpath(path), os.path.realpath(path)})
    return tuple(sorted(out))


def _package_dir(name: str) -> str:
    """The folder of an installed top-level package, without importing it ("" when absent)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return ""
    if spec is None or not spec.submodule_search_locations:
        return ""
    return os.path.dirname(spec.origin) if spec.origin else list(spec.submodule_search_locations)[0]


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def prepare_environment() -> None:
    """Settings for torch.compile and Triton under the Guard; call before any candidate code runs.

    One compile thread (no worker pools, no subprocess workers), no precompiled headers (their
    hash runs `openssl`), tqdm's monitor thread off, and explicit cache folders (so the Guard knows
    where compiled modules may be imported from; Triton's goes under the temp folder, which a
    sandbox keeps writable).
    """
    os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = "1"
    os.environ["TORCHINDUCTOR_CPP_CACHE_PRECOMPILE_HEADERS"] = "0"
    tmp = tempfile.gettempdir()
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(tmp, f"torchinductor_{_user()}"))
    os.environ.setdefault("TRITON_CACHE_DIR", os.path.join(tmp, f"triton_{_user()}", "cache"))
    if importlib.util.find_spec("tqdm") is not None:
        import tqdm.std

        tqdm.std.tqdm.monitor_interval = 0  # torch.fx's progress bar would start a monitor thread


def steering(key: str) -> bool:
    """Whether an environment variable steers a compiler, the dynamic loader or Python."""
    return key in _STEERING or key.startswith(_STEERING_PREFIXES)


def _exists(path: str) -> bool:
    try:
        _stat(path)
    except OSError:
        return False
    return True


class Toolchain:
    """The allowances above, with every path and the environment captured when it is made."""

    def __init__(self, task_dirs: tuple[str, ...], private_dirs: tuple[str, ...]) -> None:
        torch_dir = _package_dir("torch")
        triton_dir = _package_dir("triton")
        sites = list(getattr(site, "getsitepackages", list)()) + [site.getusersitepackages()]
        sites += [sysconfig.get_paths()[k] for k in ("purelib", "platlib")]
        self.site = _roots(sites)
        self.stdlib = _roots(sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib"))
        self.code = _roots([torch_dir, triton_dir])
        self.caches = _roots([os.environ.get("TORCHINDUCTOR_CACHE_DIR"), os.environ.get("TRITON_CACHE_DIR")])
        self.inductor_cache = _roots([os.environ.get("TORCHINDUCTOR_CACHE_DIR")])
        prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
        self.install = _roots([*self.site, *self.stdlib, *self.code, *prefixes])
        nvidia = [os.path.join(s, "nvidia") for s in sites]
        system = ["/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/local/cuda", "/usr/local/nvidia"]
        self.libraries = _roots([*self.install, *nvidia, *system, os.path.join(torch_dir, "lib")])
        self.modules = _roots([*self.install, *(p for p in sys.path if os.path.isdir(p)), *task_dirs])
        self.forbidden = _roots([*task_dirs, *private_dirs])
        cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
        nvcc = [os.path.join(cuda_home, "bin", "nvcc"), "/usr/local/cuda/bin/nvcc"]
        self.compilers = frozenset(
            os.path.realpath(found)
            for name in (*_C_COMPILERS, "nvcc", *nvcc, os.environ.get("CC"), os.environ.get("CXX"))
            if name and (found := shutil.which(name))
        )
        self.nvidia_smi = frozenset(os.path.realpath(p) for p in (shutil.which("nvidia-smi"),) if p)
        self.file = frozenset(os.path.realpath(p) for p in (shutil.which("file"),) if p)
        ldconfig = [shutil.which("ldconfig"), "/sbin/ldconfig", "/usr/sbin/ldconfig"]
        self.ldconfig = frozenset(os.path.realpath(p) for p in ldconfig if p and os.path.exists(p))
        # NVIDIA tools bundled with Triton and with torch (inductor points TRITON_PTXAS_PATH at torch/bin/ptxas).
        tools = [os.path.join(triton_dir, "backends", "nvidia", "bin")] if triton_dir else []
        self.tools = _roots([*tools, os.path.join(torch_dir, "bin")] if torch_dir else tools)
        ptxas = os.environ.get("TRITON_PTXAS_PATH") or shutil.which("ptxas")
        self.tool_files = frozenset({os.path.realpath(ptxas)} if ptxas else ())
        self.python = os.path.realpath(sys.executable)
        self.environ = dict(os.environ)

    # --- who is asking ----------------------------------------------------------------------------
    def _transparent(self, filename: str) -> bool:
        """Standard-library frames (importlib's frozen ones too) are skipped when finding the caller."""
        if filename.startswith("<frozen "):
            return True
        return any(_inside(filename, r) for r in self.stdlib) and not any(
            _inside(filename, r) for r in self.site
        )

    def caller(self, frame) -> str:
        """The file of the innermost frame outside the standard library ("" when none)."""
        while frame is not None:
            filename = frame.f_code.co_filename
            if not self._transparent(filename):
                return filename
            frame = frame.f_back
        return ""

    def _trusted_caller(self, frame, roots: tuple[str, ...]) -> str | None:
        """None when the caller is torch/Triton code (within roots), else why not."""
        filename = self.caller(frame)
        if filename and any(_inside(p, r) for p in (filename, _realpath(filename)) for r in roots):
            return None
        return f"called from {filename or 'nowhere'}; only torch's and Triton's compilers may"

    # --- the checks -------------------------------------------------------------------------------
    def refusal(self, event: str, args: tuple, frame) -> str | None:
        """None when torch/Triton may do this, else the reason for refusing it."""
        tampered = _tampered()
        if tampered:
            return f"{tampered} was replaced"
        if event in PROCESS_EVENTS:
            why = self._trusted_caller(frame, self.code)
            if why is None:
                if event == "subprocess.Popen":
                    executable, argv, cwd, env = (tuple(args) + (None,) * 4)[:4]
                else:
                    (executable, argv, env), cwd = (tuple(args) + (None,) * 3)[:3], None
                why = self._process(executable, argv, cwd, env)
            return why
        roots = self.code + self.caches
        why = self._trusted_caller(frame, roots)
        if why is None and event == "ctypes.dlopen":
            why = self._library(args[0] if args else None)
        return why

    def native_import(self, path: str, frame, allow_caches: bool = True) -> str | None:
        """None when an extension module may be imported from path, else why not."""
        tampered = _tampered()
        if tampered:
            return f"{tampered} was replaced"
        resolved = _realpath(path)
        if any(_inside(resolved, r) for r in self.install):
            return None
        in_cache = allow_caches and any(_inside(resolved, r) for r in self.caches)
        if in_cache and self._trusted_caller(frame, self.code) is None:
            return None
        return f"native extension {path}: only the installation's, or torch's and Triton's compiled modules"

    def _library(self, name) -> str | None:
        if name is None:
            return None
        name = _fsdecode(name) if isinstance(name, (str, bytes, os.PathLike)) else str(name)
        if "/" not in name:
            return None  # found by the loader in the system's folders
        if any(_inside(_realpath(name), r) for r in self.libraries + self.caches):
            return None
        return f"library {name} lies outside the installation"

    def _process(self, executable, argv, cwd, env) -> str | None:
        if isinstance(argv, (str, bytes, os.PathLike)):
            argv = [argv]
        argv = [_fsdecode(a) if isinstance(a, (str, bytes, os.PathLike)) else str(a) for a in argv or ()]
        cwd = _fsdecode(cwd) if cwd is not None else _getcwd()
        exe = _fsdecode(executable) if executable is not None else (argv[0] if argv else "")
        if env is not None:  # None: the child inherits this process's, whose steering variables are frozen
            env = {_fsdecode(k): _fsdecode(v) for k, v in dict(env).items()}
            why = self._environment(env)
            if why:
                return why
        if "/" not in exe:
            path = env.get("PATH", os.defpath) if env is not None else self.environ.get("PATH", os.defpath)
            exe = _which(exe, path) or exe
        exe = _realpath(_join(cwd, exe))
        if exe in self.ldconfig:
            return None if argv[1:] == ["-p"] else f"ldconfig may only list the cache (-p), not {argv[1:]}"
        if exe == self.python:
            return self._probe(argv, cwd)
        if exe in self.nvidia_smi:
            if all(_NVSMI_ARG.fullmatch(a) for a in argv[1:]):
                return None
            return f"nvidia-smi may only query, not {argv[1:]}"
        if exe in self.file:
            if len(argv) == 3 and argv[1] == "-b":
                return self._arguments(argv[2:], cwd)
            return f"file may only describe one file (-b PATH), not {argv[1:]}"
        if exe in self.compilers or exe in self.tool_files or any(_inside(exe, r) for r in self.tools):
            return self._arguments(argv[1:], cwd)
        return f"{exe} is not a compiler torch or Triton uses"

    def _environment(self, env: dict) -> str | None:
        for key, value in env.items():
            if self.environ.get(key) == value:
                continue
            if key in ("LD_LIBRARY_PATH", "PYTHONPATH"):
                roots = self.libraries if key == "LD_LIBRARY_PATH" else self.modules
                old = set(self.environ.get(key, "").split(os.pathsep))
                for entry in value.split(os.pathsep):
                    if entry in old or not entry:
                        continue
                    path = _realpath(entry)
                    if _exists(path) and not any(_inside(path, r) for r in roots):
                        return f"{key} entry {entry} lies outside the installation"
            elif steering(key):
                return f"the child's {key} differs from the evaluator's"
        return None

    def _arguments(self, args: list[str], cwd: str) -> str | None:
        for arg in args:
            for piece in _PIECES.split(arg):
                if piece.startswith(_REFUSED_ARG_PREFIXES) and piece not in _LINKER_B_FLAGS:
                    return f"compiler argument {piece!r} is refused (it runs or loads other code)"
                for text in (piece, piece.split("=", 1)[-1], piece[2:] if piece.startswith("-") else ""):
                    if "/" in text:
                        path = _realpath(_join(cwd, text))
                        if any(_inside(path, r) for r in self.forbidden):
                            return f"compiler argument {piece!r} reaches into the task folder"
        return None

    def _probe(self, argv: list[str], cwd: str) -> str | None:
        match = _PROBE.fullmatch(argv[2]) if len(argv) == 3 and argv[1] == "-c" else None
        if match is None:
            return "Python may only run inductor's library probe"
        library = _realpath(match.group(1))
        if not any(_inside(library, r) for r in self.inductor_cache):
            return f"the probe's library {match.group(1)} lies outside inductor's cache"
        try:
            names = _listdir(cwd)
        except OSError:
            names = []
        shadows = [n for n in names if n.split(".", 1)[0] in _PROBE_IMPORTS]
        if shadows:
            return f"the probe would import {shadows[0]} from its working folder {cwd}"
        return None
