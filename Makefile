# Convenience front door. The real build is CMake (build/ and build-san/).
#   make demo   install deps, build, run the local cluster demo
#   make test   install deps, build, run every test
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps build test demo san test-san fuzz clean format

all: build

deps:
	@bash deploy/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	@bash deploy/local/demo.sh

san: deps
	@cmake -S . -B build-san -DMLSEC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build build-san -j $(JOBS)

test-san: san
	@cd build-san && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --output-on-failure -j $(JOBS) -LE nosan

fuzz: deps
	@CC=clang cmake -S . -B build-fuzz -DMLSEC_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf build build-san build-fuzz .run
