package sim

import (
	"fmt"
	"strings"
	"time"
)

// Durations says how long each kind of operation keeps its resource busy, on
// the simulator's clock, before jitter. A zero field takes its default; a
// negative one means the operation completes at once.
type Durations struct {
	Run      time.Duration // stopped -> running, plus RunPerVM for each VM started
	RunPerVM time.Duration
	Resume   time.Duration // suspended -> running
	Suspend  time.Duration
	Stop     time.Duration // graceful shutdown
	Halt     time.Duration // forced shutdown
	Reset    time.Duration
	Create   time.Duration // POST /configurations from a template
	AddVM    time.Duration // PUT /configurations/{id} with template_id
	Edit     time.Duration // hardware change of a stopped VM
	Delete   time.Duration // then the resource answers 404
}

// defaultDurations are the simulator specification's values: long enough that a
// client polling every 10 s sees a few busy reads, short enough for a demo.
func defaultDurations() Durations {
	return Durations{
		Run: 30 * time.Second, RunPerVM: 5 * time.Second, Resume: 20 * time.Second,
		Suspend: 20 * time.Second, Stop: 40 * time.Second, Halt: 5 * time.Second,
		Reset: 15 * time.Second, Create: 60 * time.Second, AddVM: 30 * time.Second,
		Edit: 10 * time.Second, Delete: 10 * time.Second,
	}
}

func (d Durations) withDefaults() Durations {
	def := defaultDurations()
	for _, p := range []struct{ got, def *time.Duration }{
		{&d.Run, &def.Run}, {&d.RunPerVM, &def.RunPerVM}, {&d.Resume, &def.Resume},
		{&d.Suspend, &def.Suspend}, {&d.Stop, &def.Stop}, {&d.Halt, &def.Halt},
		{&d.Reset, &def.Reset}, {&d.Create, &def.Create}, {&d.AddVM, &def.AddVM},
		{&d.Edit, &def.Edit}, {&d.Delete, &def.Delete},
	} {
		switch {
		case *p.got == 0:
			*p.got = *p.def
		case *p.got < 0:
			*p.got = 0
		}
	}
	return d
}

// BusyWeights are the relative chances of each answer to a change sent to a
// busy resource; the real API gives all of them, and a client must handle each.
// All zero means the defaults (0.4, 0.4, 0.2, 0); negative weights count as 0.
type BusyWeights struct {
	Status422  float64 // 422 {"errors":["The machine was busy. Try again later."]}
	Status423  float64 // 423 with Retry-After
	Dropped200 float64 // 200 with the busy body; the change is silently dropped
	Status409  float64 // 409 that says busy
}

// Demo makes an auto-provisioned simulator show, early in a run, the things a
// newcomer should see runbook handle.
type Demo struct {
	// BusyOnFirstUse keeps an auto-provisioned environment busy for this long
	// after it is first used ("a colleague's operation"), so the first guard waits.
	BusyOnFirstUse time.Duration
	// Script is applied in order, each fault to the first requests it matches
	// across the whole server (Times of them, default 1), then the next one.
	Script []Fault
}

// Config is everything that shapes a simulator. New fills zero fields with
// the defaults, so New(Config{}) is a strict, realistic Skytap.
type Config struct {
	Clock Clock // nil: RealClock()
	Seed  uint64

	// Credentials maps username to API token. Empty: any Basic credentials are
	// accepted; a request without Authorization still gets 401.
	Credentials map[string]string

	// AutoProvision makes any environment id exist on first use, with VMsPerEnv
	// running VMs whose ids are the environment id followed by 01, 02, ...; an
	// unknown bare /vms/{id} is provisioned too (its environment is the id
	// without its last two digits). Deleted resources stay deleted.
	AutoProvision bool
	VMsPerEnv     int // default 3

	Durations Durations // zero fields: the defaults
	Jitter    float64   // ± fraction applied to each duration; default 0.2; negative: none

	Busy           BusyWeights   // answers to changes of a busy resource
	RetryAfter     time.Duration // Retry-After on a 423 busy answer; default 10s
	RateRetryAfter time.Duration // Retry-After on 429; default 5s
	// RetryAfterDate sends Retry-After as an HTTP-date instead of seconds. The
	// date is on the simulator's clock, so it only makes sense to a client
	// that shares that clock (a test, not a client of a scaled clock).
	RetryAfterDate bool

	Rate  float64 // token bucket per credential, requests/s; default 10; negative: unlimited
	Burst int     // bucket size; default 20

	// MaxConcurrentOps bounds the account's runstate operations in flight;
	// beyond it accepted operations queue with rate_limited: true. Default 3;
	// negative: unlimited.
	MaxConcurrentOps int
	// QueueStale shows a queued resource's old runstate instead of busy.
	QueueStale bool
	// LagReads: after an accepted change, the first LagReads GETs of the changed
	// resource still show its previous state (eventual consistency).
	LagReads int

	EmptyEnvRunstate    string // runstate of an environment without VMs; default "stopped"
	StrictSuspendedHalt bool   // suspended -> halted is 422 (default: forced -> stopped)

	Demo Demo

	// Async shapes the second personality, served under /async/ (async.go).
	Async AsyncAPI

	// MaxLog bounds the request log of a long-lived server: past it, the older
	// half is dropped. 0: keep everything (tests assert on the whole log).
	MaxLog int
}

// DefaultConfig returns the configuration New uses for a zero Config, with
// every default filled in and the real clock.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	if c.Clock == nil {
		c.Clock = RealClock()
	}
	if c.VMsPerEnv <= 0 {
		c.VMsPerEnv = 3
	}
	c.Durations = c.Durations.withDefaults()
	if c.Jitter == 0 {
		c.Jitter = 0.2
	}
	if c.Busy == (BusyWeights{}) {
		c.Busy = BusyWeights{Status422: 0.4, Status423: 0.4, Dropped200: 0.2}
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = 10 * time.Second
	}
	if c.RateRetryAfter <= 0 {
		c.RateRetryAfter = 5 * time.Second
	}
	if c.Rate == 0 {
		c.Rate = 10
	}
	if c.Burst <= 0 {
		c.Burst = 20
	}
	if c.MaxConcurrentOps == 0 {
		c.MaxConcurrentOps = 3
	}
	if c.LagReads < 0 {
		c.LagReads = 0
	}
	c.Async = c.Async.withDefaults()
	if c.EmptyEnvRunstate == "" {
		c.EmptyEnvRunstate = "stopped"
	}
	return c
}

// scenarios are the named configurations of `runbook sim --scenario` and
// `runbook run --sim`, in the order ScenarioNames lists them.
var scenarios = []struct {
	name, about string
	config      func() Config
}{
	{"default", "realistic: any environment id exists (with 3 running VMs), busy answers, a 10/s rate limit, 3 operations at once; /async/: 100 requests a minute, 10% of operations fail", defaultScenario},
	{"demo", "what run --sim uses: like quiet, plus a first environment busy for 15s, then a 423 and a busy 422 on the first changes; /async/: 100 requests a minute, a tenth running", demoConfig},
	{"quiet", "any environment id exists, no rate limit, nothing busy but what the client does itself; /async/: no budget", quietConfig},
}

// defaultScenario is the realistic simulator of DefaultConfig, auto-provisioned:
// served on its own, nothing else could create the resources a runbook names.
func defaultScenario() Config {
	c := DefaultConfig()
	c.AutoProvision = true
	c.Async.FailShare = 0.1
	return c
}

// About describes a scenario in one line.
func About(name string) string {
	for _, sc := range scenarios {
		if sc.name == name {
			return sc.about
		}
	}
	return ""
}

// demoConfig is meant for a clock scaled 10 times (ScaledClock(10)) and a
// client polling every 10 real seconds (100 simulated seconds): every default
// duration is shorter than one poll, so each step shows one busy answer and is
// done at the next poll, and the whole example runs in well under a minute.
// The first environment used is busy for 15 simulated seconds, so the first
// guard waits; the first change then gets 423 with Retry-After 5, the second a
// 422 busy, and the client's handling of both is visible in its output.
//
// On /async/, the demo keeps the budget of 100 requests a minute, so a
// rehearsal shows the client heard it, with a tenth of the environments
// running and operations over within one poll (so suspending every running
// one takes a couple of minutes, not an hour), none failing.
func demoConfig() Config {
	c := quietConfig()
	c.Async.Limit, c.Async.RunningShare = 100, 0.1
	c.Async.Queued, c.Async.Duration = time.Second, 5*time.Second
	c.Demo = Demo{
		BusyOnFirstUse: 15 * time.Second,
		Script: []Fault{
			{Target: "*", Status: 423, RetryAfter: 5 * time.Second},
			{Target: "*", Status: 422},
		},
	}
	return c
}

// quietConfig auto-provisions and never makes anything busy on its own: no
// colleague's operation, no scripted faults, no rate limit (on /async/ no
// budget either, and no operation fails). A change sent to a
// resource that the client itself made busy still gets the usual busy answers;
// accepting it would break the state machine.
func quietConfig() Config {
	c := DefaultConfig()
	c.AutoProvision = true
	c.Rate = -1
	c.Async.Limit = -1
	return c
}

// Scenario returns the named configuration; see ScenarioNames.
func Scenario(name string) (Config, error) {
	for _, sc := range scenarios {
		if sc.name == name {
			return sc.config(), nil
		}
	}
	return Config{}, fmt.Errorf("unknown simulator scenario %q (known: %s)", name, strings.Join(ScenarioNames(), ", "))
}

// ScenarioNames lists the names Scenario knows.
func ScenarioNames() []string {
	names := make([]string, len(scenarios))
	for i, sc := range scenarios {
		names[i] = sc.name
	}
	return names
}
