/*
 * pickle.h - a restricted pickle virtual machine (protocols 0-5).
 *
 * It interprets every opcode the way CPython's _pickle does (stack, mark
 * stack with fences, memo with PUT/BINPUT/LONG_BINPUT/MEMOIZE, frames,
 * persistent ids) but never imports or calls anything: globals stay
 * symbolic and REDUCE/NEWOBJ/INST/OBJ/BUILD produce symbolic nodes. The
 * result is a value tree that callers walk (e.g. to find tensors) and a
 * list of every global the pickle names, with its byte offset.
 *
 * A pickle that does not parse is reported through the returned error and
 * the VM then keeps scanning the remaining opcodes linearly ("recovery"),
 * so a payload placed after a deliberate parse error is still seen.
 *
 * Ownership: an mlsec_pickle owns every value, string and record it hands
 * out; all live until mlsec_pickle_free(). Input buffers are borrowed only
 * during mlsec_pickle_run() (strings are copied).
 */
#ifndef MLSEC_PICKLE_H
#define MLSEC_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "mlsec/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default bounds; every one can be lowered through mlsec_pickle_limits. */
#define MLSEC_PICKLE_MAX_OPS (64u * 1024 * 1024)      /* opcodes executed */
#define MLSEC_PICKLE_MAX_STACK (1u << 20)             /* stack items */
#define MLSEC_PICKLE_MAX_MARKS (1u << 16)             /* nested MARKs */
#define MLSEC_PICKLE_MAX_MEMO (1u << 25)              /* memo entries */
#define MLSEC_PICKLE_MAX_DECODED (512u * 1024 * 1024) /* bytes of values built */
#define MLSEC_PICKLE_MAX_CONTAINER (1u << 24)         /* items in one container */
#define MLSEC_PICKLE_MAX_GLOBALS 65536                /* global records kept */
#define MLSEC_PICKLE_MAX_NOTES 4096                   /* notes kept */
/*
 * Scan-only VMs keep the memo entries with indexes below this (8 bytes
 * each); later entries are counted (MEMOIZE indexes stay exact) but not
 * kept, so memory does not grow with the pickle. Fetching one that was not
 * kept yields an unknown value and a MLSEC_PNOTE_MEMO_UNTRACKED note; a
 * STACK_GLOBAL on it is a DYNAMIC_GLOBAL (fail closed).
 */
#define MLSEC_PICKLE_SCAN_MEMO (1u << 18)
/* Past it, globals, calls and identifier-like strings (what STACK_GLOBAL
 * and REDUCE need again) are still kept, up to this many. */
#define MLSEC_PICKLE_SCAN_MEMO_LATE (1u << 17)

typedef struct mlsec_pickle_limits {
	size_t max_ops, max_stack, max_marks, max_memo, max_decoded, max_container;
	/*
	 * Scan-only mode, for pickles whose values are not needed (raw pickle
	 * files, hidden members, nested pickles): scalars and containers are
	 * shared placeholders (containers stay empty), while strings, globals,
	 * calls and persistent ids are kept, so STACK_GLOBAL, memo tricks and
	 * nested pickles are resolved exactly. String values then borrow the
	 * input buffer (u.str.s is not NUL-terminated): the buffer must outlive
	 * any use of the values. Global names are always copied.
	 */
	int scan_only;
	/*
	 * 1 when the input buffer lies in a read-only mapping of a regular
	 * file (never heap memory): the VM then drops the pages it has gone
	 * past (madvise MADV_DONTNEED every MLSEC_PICKLE_RELEASE_STEP bytes),
	 * so a mapped pickle does not stay resident as it is read. Borrowed
	 * strings stay valid: their pages fault back in from the page cache.
	 */
	int input_mapped;
} mlsec_pickle_limits;

/* Bytes read between two releases of a mapped input (input_mapped). */
#define MLSEC_PICKLE_RELEASE_STEP (4u * 1024 * 1024)

typedef enum mlsec_pval_kind {
	MLSEC_PV_NONE = 0,
	MLSEC_PV_BOOL,
	MLSEC_PV_INT,    /* fits int64: u.i */
	MLSEC_PV_BIGINT, /* u.str: little-endian two's complement bytes */
	MLSEC_PV_FLOAT,
	MLSEC_PV_STR,       /* u.str, UTF-8 (surrogates passed through) */
	MLSEC_PV_BYTES,     /* u.str */
	MLSEC_PV_BYTEARRAY, /* u.str */
	MLSEC_PV_TUPLE,     /* u.seq */
	MLSEC_PV_LIST,      /* u.seq */
	MLSEC_PV_DICT,      /* u.seq: key0, value0, key1, value1, ... */
	MLSEC_PV_SET,       /* u.seq */
	MLSEC_PV_FROZENSET, /* u.seq */
	MLSEC_PV_GLOBAL,    /* u.global: a symbolic module attribute */
	MLSEC_PV_CALL,      /* u.call: REDUCE, NEWOBJ(_EX), INST, OBJ result */
	MLSEC_PV_PERSID,    /* u.persid: persistent_load(pid) */
	MLSEC_PV_EXT,       /* u.i: copyreg extension code (EXT1/2/4) */
	MLSEC_PV_BUFFER,    /* NEXT_BUFFER: out-of-band buffer (protocol 5) */
	MLSEC_PV__COUNT
} mlsec_pval_kind;

typedef enum mlsec_pcall_kind {
	MLSEC_PCALL_REDUCE = 0,
	MLSEC_PCALL_NEWOBJ,
	MLSEC_PCALL_NEWOBJ_EX,
	MLSEC_PCALL_INST,
	MLSEC_PCALL_OBJ,
} mlsec_pcall_kind;

typedef struct mlsec_pval mlsec_pval;
struct mlsec_pval {
	mlsec_pval_kind kind;
	uint32_t mark;    /* scratch for tree walkers (see mlsec_pickle_epoch) */
	long long offset; /* opcode offset that created the value */
	union {
		int64_t i; /* BOOL, INT, EXT */
		double f;
		struct {
			const char *s; /* NUL-terminated copy */
			size_t len;
		} str;
		struct {
			mlsec_pval **items;
			size_t n, cap;
		} seq;
		struct {
			const char *module, *name;
		} global;
		struct {
			mlsec_pcall_kind how;
			mlsec_pval *callable;  /* class for NEWOBJ/INST/OBJ */
			mlsec_pval *args;      /* a TUPLE */
			mlsec_pval *kwargs;    /* NEWOBJ_EX only, else NULL */
			mlsec_pval *state;     /* last BUILD state, NULL if none */
			mlsec_pval *dictitems; /* DICT of SETITEM(S) applied to it, or NULL */
			mlsec_pval *listitems; /* LIST of APPEND(S) applied to it, or NULL */
			size_t nbuild;         /* number of BUILDs applied */
		} call;
		struct {
			mlsec_pval *pid;
		} persid;
	} u;
};

/* One global named by the pickle (GLOBAL, INST, STACK_GLOBAL). */
typedef struct mlsec_pickle_global {
	const char *module; /* as written, e.g. "__builtin__" */
	const char *name;
	long long offset; /* of the opcode, relative to the pickle start */
	int opcode;       /* 'c', 'i' or 0x93 */
	int recovered;    /* found by the linear scan after a parse error */
} mlsec_pickle_global;

typedef enum mlsec_pickle_note_kind {
	MLSEC_PNOTE_DYNAMIC_GLOBAL = 1, /* STACK_GLOBAL on non-string operands */
	MLSEC_PNOTE_EXTENSION,          /* EXT1/2/4 (copyreg registry lookup) */
	MLSEC_PNOTE_NESTED_PICKLE,      /* a bytes/str value that is itself a pickle */
	MLSEC_PNOTE_BUILD_ON_GLOBAL,    /* BUILD applied to a class/module attribute */
	MLSEC_PNOTE_SETITEM_ON_OBJECT,  /* SETITEM/APPEND on a non-container (calls a method) */
	MLSEC_PNOTE_OOB_BUFFER,         /* NEXT_BUFFER / READONLY_BUFFER */
	MLSEC_PNOTE_MEMO_UNTRACKED,     /* GET of a memo entry a scan-only VM did not keep */
} mlsec_pickle_note_kind;

typedef struct mlsec_pickle_note {
	mlsec_pickle_note_kind kind;
	long long offset;
	const mlsec_pval *value; /* NESTED_PICKLE: the bytes/str value, else NULL */
} mlsec_pickle_note;

typedef struct mlsec_pickle mlsec_pickle;

/* New VM; limits may be NULL (defaults). NULL on allocation failure. */
mlsec_pickle *mlsec_pickle_new(const mlsec_pickle_limits *limits);
void mlsec_pickle_free(mlsec_pickle *p);

/*
 * Runs one pickle from buf[0..len). On success returns MLSEC_OK, and
 * mlsec_pickle_root() is the value STOP returned and
 * mlsec_pickle_consumed() the number of bytes up to and including STOP
 * (bytes after it are the caller's business: legacy torch files stack
 * pickles). On failure returns MLSEC_ERR_PARSE / MLSEC_ERR_LIMIT /
 * MLSEC_ERR_NOMEM with err->offset at the failing opcode, after having
 * scanned the rest of the buffer linearly for globals (recovered = 1).
 * A VM may be run only once.
 */
mlsec_err mlsec_pickle_run(mlsec_pickle *p, const uint8_t *buf, size_t len, mlsec_error *err);

/*
 * Linear opcode scan of buf[0..len) for globals (no stack semantics), as
 * done after a parse error; used for bytes after STOP that are not a
 * pickle of their own. Offsets are reported as base + position.
 */
mlsec_err mlsec_pickle_scan_linear(mlsec_pickle *p, const uint8_t *buf, size_t len, long long base,
                                   mlsec_error *err);

const mlsec_pval *mlsec_pickle_root(const mlsec_pickle *p);
size_t mlsec_pickle_consumed(const mlsec_pickle *p);
int mlsec_pickle_protocol(const mlsec_pickle *p); /* highest PROTO seen, 0 if none */
size_t mlsec_pickle_ops(const mlsec_pickle *p);
/* Collections a scan-only VM ran to bound its memory (0 for full VMs). */
size_t mlsec_pickle_collections(const mlsec_pickle *p);
size_t mlsec_pickle_global_count(const mlsec_pickle *p);
const mlsec_pickle_global *mlsec_pickle_global_at(const mlsec_pickle *p, size_t i);
size_t mlsec_pickle_note_count(const mlsec_pickle *p);
const mlsec_pickle_note *mlsec_pickle_note_at(const mlsec_pickle *p, size_t i);
/* 1 when globals or notes were dropped because of the record bounds. */
int mlsec_pickle_truncated(const mlsec_pickle *p);

/*
 * Returns a fresh mark value for a tree walk: walkers set v->mark to it on
 * visit and skip values already carrying it, which bounds walks of shared
 * or cyclic trees (memo aliasing makes both possible).
 */
uint32_t mlsec_pickle_epoch(mlsec_pickle *p);

/* 1 if buf looks like the start of a pickle (used for nested/hidden scans). */
int mlsec_pickle_sniff(const uint8_t *buf, size_t len);

/* Global classification, shared by every stage that reads pickles. */
typedef enum mlsec_pickle_class {
	MLSEC_PCLASS_SAFE = 0,  /* allowlisted reconstruction helpers */
	MLSEC_PCLASS_NOTABLE,   /* benign but worth a low note (argparse.Namespace, ...) */
	MLSEC_PCLASS_UNKNOWN,   /* not on any list */
	MLSEC_PCLASS_DANGEROUS, /* execution / import / IO / nested-load primitive */
} mlsec_pickle_class;

/*
 * Classifies module.name. Python 2 names are mapped as CPython's
 * fix_imports does (__builtin__ -> builtins, ...); dotted names are
 * attribute chains, so any dangerous component makes the whole dangerous.
 * *why (may be NULL) receives a static reason string.
 */
mlsec_pickle_class mlsec_pickle_classify(const char *module, const char *name, const char **why);

#ifdef __cplusplus
}
#endif
#endif
