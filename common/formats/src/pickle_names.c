/*
 * pickle_names.c - which globals a pickle may name (see
 * mlsec_pickle_classify in mlsec/pickle.h).
 *
 * Three lists: SAFE (the reconstruction helpers PyTorch/NumPy checkpoints
 * need), NOTABLE (benign objects seen in training checkpoints), and
 * DANGEROUS (execution, import, file/network IO and nested-load
 * primitives seen in real payloads and scanner advisories). Everything
 * else is UNKNOWN. Dangerous entries match a whole module ("os" matches
 * os.system and os.path.join) or one attribute ("builtins.eval").
 */
#include <stdio.h>
#include <string.h>

#include "mlsec/pickle.h"

/* Python 2 module names CPython's fix_imports maps on load. */
static const char *const py2_map[][2] = {
        {"__builtin__", "builtins"},
        {"copy_reg", "copyreg"},
        {"cPickle", "pickle"},
        {"exceptions", "builtins"},
        {"commands", "subprocess"},
        {"urllib2", "urllib.request"},
        {"cStringIO", "io"},
        {"StringIO", "io"},
        {"Queue", "queue"},
        {"httplib", "http.client"},
        {"SocketServer", "socketserver"},
};

static const char *const safe[] = {
        "collections.OrderedDict",
        "collections.defaultdict", /* plain container, default_factory is another global */
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._utils._rebuild_qtensor",
        "torch._utils._rebuild_sparse_tensor",
        "torch._utils._rebuild_meta_tensor_no_storage",
        "torch.Size",
        "torch.device",
        "torch.float32",
        "torch.float64",
        "torch.float16",
        "torch.bfloat16",
        "torch.int64",
        "torch.int32",
        "torch.int16",
        "torch.int8",
        "torch.uint8",
        "torch.bool",
        "torch.per_tensor_affine",
        "torch.per_channel_affine",
        "numpy.core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy.ndarray",
        "numpy.dtype",
        "_codecs.encode", /* numpy arrays pickled with protocol 2 carry bytes this way */
        "builtins.set",
        "builtins.frozenset",
        "builtins.slice",
        "builtins.complex",
        "builtins.bytearray",
        "builtins.range",
        "builtins.bytes",
};

static const char *const notable[] = {
        "argparse.Namespace",
        "copyreg._reconstructor", /* reconstructs plain classes: the class itself is listed too */
        "builtins.object",
        "torch.optim.lr_scheduler.LambdaLR",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "datetime.datetime",
        "datetime.date",
        "datetime.timedelta",
        "numpy.core.multiarray._frombuffer",
};

/* Whole modules (and everything below them). */
static const char *const bad_modules[] = {
        "os",
        "posix",
        "nt",
        "subprocess",
        "pty",
        "sys",
        "runpy",
        "importlib",
        "marshal",
        "pickle",
        "_pickle",
        "dill",
        "cloudpickle",
        "joblib.load",
        "shelve",
        "socket",
        "_socket",
        "ssl",
        "webbrowser",
        "urllib",
        "http.client",
        "requests",
        "httplib2",
        "ftplib",
        "smtplib",
        "telnetlib",
        "shutil",
        "ctypes",
        "_ctypes",
        "code",
        "codeop",
        "pdb",
        "bdb",
        "cProfile",
        "profile",
        "timeit",
        "pydoc",
        "asyncio",
        "multiprocessing",
        "_posixsubprocess",
        "signal",
        "tempfile",
        "glob",
        "zipimport",
        "pkgutil",
        "pip",
        "setuptools",
        "distutils",
        "venv",
        "imaplib",
        "mailcap",
        "uuid._get_command_stdout",
        "_io",
        "io.open",
        "io.FileIO",
        "fileinput",
        "linecache",
        "tarfile",
        "zipfile",
        "sqlite3",
        "xmlrpc",
        "platform.popen",
        "torch.serialization",
        "torch.load",
        "torch.jit",
        "torch.hub",
        "torch._dynamo",
        "torch._inductor",
        "torch.utils.collect_env",
        "torch.storage._load_from_bytes",
        "torch._C._jit",
        "torch.package",
        "torch.ops",
        "numpy.f2py",
        "numpy.testing._private.utils",
        "numpy.load",
        "numpy.lib.npyio",
        "logging.FileHandler",
        "logging.config",
        "types",
        "functools.partial",
        "functools.reduce",
        "operator.attrgetter",
        "operator.methodcaller",
        "operator.itemgetter",
        "builtins.eval",
        "builtins.exec",
        "builtins.compile",
        "builtins.getattr",
        "builtins.setattr",
        "builtins.delattr",
        "builtins.__import__",
        "builtins.open",
        "builtins.breakpoint",
        "builtins.apply",
        "builtins.execfile",
        "builtins.input",
        "builtins.globals",
        "builtins.locals",
        "builtins.vars",
        "builtins.memoryview",
        "builtins.exit",
        "builtins.quit",
        "builtins.help",
        "builtins.file",
        "builtins.reload",
        "_operator",
        "gc",
        "inspect",
        "builtins.type",
        "code.InteractiveInterpreter",
        "_thread",
        "threading",
        "concurrent",
        "trace",
        "site",
        "sysconfig",
        "venv",
};

/* Attribute names that are dangerous wherever they appear in a dotted chain. */
static const char *const bad_attrs[] = {
        "system",         "popen",     "exec",       "eval",          "execv",
        "execve",         "spawn",     "__import__", "__globals__",   "__builtins__",
        "__subclasses__", "__code__",  "__reduce__", "__reduce_ex__", "__getattribute__",
        "__class__",      "__bases__", "__mro__",    "__dict__",      "__init__",
        "__new__",        "load",      "loads",      "compile",       "getattr",
        "setattr",        "open",
};

static int in_list(const char *full, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(full, list[i]))
			return 1;
	return 0;
}

static int prefix_match(const char *full, const char *mod)
{
	size_t l = strlen(mod);
	return !strncmp(full, mod, l) && (full[l] == 0 || full[l] == '.');
}

mlsec_pickle_class mlsec_pickle_classify(const char *module, const char *name, const char **why)
{
	const char *dummy;
	if (!why)
		why = &dummy;
	char full[1024];
	for (size_t i = 0; i < sizeof py2_map / sizeof py2_map[0]; i++)
		if (!strcmp(module, py2_map[i][0])) {
			module = py2_map[i][1];
			break;
		}
	if (!strcmp(module, "?") || !*module || !*name) {
		*why = "global name not resolvable statically";
		return MLSEC_PCLASS_DANGEROUS;
	}
	int n = snprintf(full, sizeof full, "%s.%s", module, name);
	if (n < 0 || (size_t)n >= sizeof full) {
		*why = "oversized global name";
		return MLSEC_PCLASS_DANGEROUS;
	}
	for (size_t i = 0; i < sizeof bad_modules / sizeof bad_modules[0]; i++)
		if (prefix_match(full, bad_modules[i])) {
			*why = "execution, import, IO or nested-load primitive";
			return MLSEC_PCLASS_DANGEROUS;
		}
	/* Any attribute step (module or dotted name) that reaches a dangerous
	 * attribute: e.g. torch._utils.os.system, numpy.__builtins__.eval. */
	for (const char *c = full; c && *c;) {
		const char *dot = strchr(c, '.');
		size_t l = dot ? (size_t)(dot - c) : strlen(c);
		for (size_t i = 0; i < sizeof bad_attrs / sizeof bad_attrs[0]; i++)
			if (strlen(bad_attrs[i]) == l && !strncmp(c, bad_attrs[i], l)) {
				*why = "dangerous attribute in the global's name";
				return MLSEC_PCLASS_DANGEROUS;
			}
		c = dot ? dot + 1 : NULL;
	}
	/* Storage classes: torch.FloatStorage, torch.cuda.HalfStorage, ... */
	if (!strcmp(module, "torch") || !strcmp(module, "torch.cuda")) {
		size_t l = strlen(name);
		if (l > 7 && !strcmp(name + l - 7, "Storage") && !strchr(name, '.')) {
			*why = "storage class";
			return MLSEC_PCLASS_SAFE;
		}
	}
	if (!strcmp(full, "torch.storage.UntypedStorage") ||
	    !strcmp(full, "torch.storage.TypedStorage")) {
		*why = "storage class";
		return MLSEC_PCLASS_SAFE;
	}
	if (in_list(full, safe, sizeof safe / sizeof safe[0])) {
		*why = "allowlisted reconstruction helper";
		return MLSEC_PCLASS_SAFE;
	}
	if (in_list(full, notable, sizeof notable / sizeof notable[0])) {
		*why = "benign object commonly found in training checkpoints";
		return MLSEC_PCLASS_NOTABLE;
	}
	if (!strcmp(module, "builtins")) {
		*why = "builtin not on the allowlist";
		return MLSEC_PCLASS_UNKNOWN;
	}
	*why = "global not on the allowlist";
	return MLSEC_PCLASS_UNKNOWN;
}
