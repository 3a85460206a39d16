// Package agent runs one node's lifecycle: identity, certificates,
// membership, etcd runtime, readiness, supervision. The stages run in the
// order listed in (*Agent).stages; each is safe to rerun, so a crashed or
// restarted agent simply starts from the top and finds its earlier work done
// (certificates reused, the discovery registration found again, the running
// container adopted).
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/identity"
	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/runtime"
	"github.com/etcd-agent/etcd-agent/agent/sidefile"
	"github.com/etcd-agent/etcd-agent/discovery"
	"github.com/etcd-agent/etcd-agent/pki"
)

// Notifier is what the agent tells its supervisor (systemd's sd_notify).
type Notifier interface {
	Ready(status string) error
	Status(status string) error
	Watchdog() error
	Stopping(status string) error
}

// Options are the agent's dependencies. Config and Identity are required,
// and Runtime for Run; the rest have defaults.
type Options struct {
	Config   *config.Config
	Identity identity.Source
	Runtime  runtime.Runtime
	// Discovery overrides the source built from Config (tests).
	Discovery discovery.Source
	Notifier  Notifier
	Logger    *slog.Logger
	Version   string
	// WatchdogInterval is how often to send WATCHDOG=1; 0 disables.
	WatchdogInterval time.Duration
	// StopEtcdOnExit stops the etcd member when the agent exits. Embedded
	// etcd always stops with the process; a container is left running by
	// default so agent restarts and upgrades adopt it without a blip.
	StopEtcdOnExit bool
	// Now is the clock. Zero: time.Now.
	Now func() time.Time
	// JoinHook, when set, is called at the steps of a join
	// (membership.HookAdded: after the member add, before etcd starts;
	// membership.HookPromote: before each promotion attempt). An error
	// aborts Run there, as a crash would (tests).
	JoinHook func(step membership.HookStep) error
	// CertCheckInterval is how often certificates and the CA bundle are
	// checked. Zero: a quarter of pki.renewBefore, between 5s and 1h
	// (tests shorten it).
	CertCheckInterval time.Duration
	// ChangeReadyTimeout bounds the wait for a member restarted with a
	// changed etcd image or setting to be healthy and caught up; past it the
	// change is rolled back and not tried on any member. Zero: 2 minutes.
	ChangeReadyTimeout time.Duration
	// LearnerCatchUpTimeout bounds a learner's catch-up before it removes
	// itself and joins again. Zero: 15 minutes.
	LearnerCatchUpTimeout time.Duration
}

// Agent is one node's agent. Create it with New and call Run once.
type Agent struct {
	opts Options
	cfg  *config.Config
	log  *slog.Logger
	rec  *report.Recorder
	now  func() time.Time

	// Filled in by the stages, in order.
	id       identity.Identity
	ca       *pki.CA
	certs    pki.NodeCerts
	decision membership.Decision
	spec     etcdconf.Spec // what the member runs; etcdSpec() off the main goroutine
	specMu   sync.Mutex
	desired  etcdconf.Spec // what the config asks for (rolling changes, etcdchange.go)
	client   *clientv3.Client
	ready    chan struct{}
	disc     discovery.Source // set when discovery was consulted

	// A client to the other members, for what a learner cannot serve
	// (member lists, promotion).
	cluster *clientv3.Client
	// etcdSupervised is closed when this pass's etcd supervision returned.
	etcdSupervised chan struct{}
	readyOnce      sync.Once
	// inconsistent holds why etcd is held stopped after etcd's initial
	// corruption check refused this member's data ("" while it is not).
	inconsistent atomic.Value
	// bundle is the CA trust bundle the running etcd loaded (CA rotation).
	bundle etcdBundle
	// lastChangeCheck: when a config change was last looked at before READY.
	lastChangeCheck time.Time
	// plannedExit is how etcd last exited during a planned restart.
	plannedExit atomic.Value
	// maint is the defragmentation and NOSPACE state (maintain.go).
	maint maintainer
	// recovering is a recovery whose new member is not healthy yet.
	recovering *recovering
	// lastReplacedReport is when a replaced-but-running cluster was last
	// reported (checkReplaced).
	lastReplacedReport time.Time
	// backups is the scheduled snapshot job (backupjob.go).
	backups backupJob
	// members is the membership job: enter, promote, check, rejoin, leave.
	members *membership.Job
}

// New checks the options and returns an agent ready to Run.
func New(opts Options) (*Agent, error) {
	if opts.Config == nil || opts.Identity == nil {
		return nil, errors.New("agent: Config and Identity are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Notifier == nil {
		opts.Notifier = nopNotifier{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ChangeReadyTimeout <= 0 {
		opts.ChangeReadyTimeout = caRestartReady
	}
	if opts.LearnerCatchUpTimeout <= 0 {
		opts.LearnerCatchUpTimeout = membership.DefaultLearnerCatchUpTimeout
	}
	a := &Agent{opts: opts, cfg: opts.Config, log: opts.Logger, now: opts.Now, ready: make(chan struct{})}
	a.members = membership.NewJob(membershipNode{a}, membership.Options{Hook: opts.JoinHook, LearnerCatchUpTimeout: opts.LearnerCatchUpTimeout})
	a.rec = report.NewRecorder(report.NodeReport{
		PID:     os.Getpid(),
		Version: opts.Version,
		CertDir: opts.Config.PKI.Dir,
	}, opts.Now)
	return a, nil
}

// Ready is closed once the local member is healthy, a voter and caught up.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Report returns the agent's current published state.
func (a *Agent) Report() report.NodeReport { return a.rec.Snapshot() }

type stage struct {
	name  string
	phase report.Phase
	run   func(ctx context.Context) error
}

// stages is the node lifecycle, top to bottom. A pass from "membership" on
// is repeated when the node must rejoin as a new member
// (membership.RejoinNeeded).
func (a *Agent) stages() []stage {
	return []stage{
		{"identity", report.PhaseIdentity, a.resolveIdentity},
		{"certificates", report.PhaseCertificates, a.ensureCertificates},
		{"membership", report.PhaseDiscovery, a.decideMembership},
		{"etcd", report.PhaseStartingEtcd, a.startEtcd},
		{"ready", report.PhaseStartingEtcd, a.waitReady},
	}
}

// Run executes the stages and then supervises until ctx is cancelled.
// It returns nil on a clean shutdown.
func (a *Agent) Run(ctx context.Context) (err error) {
	if a.opts.Runtime == nil {
		return errors.New("agent: Run needs a Runtime")
	}
	if err := os.MkdirAll(filepath.Dir(a.cfg.Agent.StatusFile), 0o755); err != nil {
		return fmt.Errorf("create status dir: %w", err)
	}
	defer func() { a.shutdown(err) }()
	defer a.serveMetrics(ctx)()
	if err := a.leftError(); err != nil {
		return err
	}
	stages := a.stages()
	for {
		err := a.runPass(ctx, stages)
		if rq, ok := asRecover(err); ok {
			if err := a.recoverCluster(ctx, rq.req); err != nil {
				return nil // cancelled: shutting down
			}
			stages = a.stages()[2:] // identity and certificates stay
			continue
		}
		r, ok := asRejoin(err)
		if !ok {
			return err
		}
		if err := a.leftError(); err != nil {
			// `leave` started after this pass began: never rejoin.
			return err
		}
		if err := a.members.Rejoin(ctx, r); err != nil {
			return fmt.Errorf("rejoin: %w", err)
		}
		stages = a.stages()[2:] // identity and certificates stay
	}
}

// runPass runs stages, then supervises. etcd's supervision lives with the
// pass, so a rejoin stops it before the data dir is moved.
func (a *Agent) runPass(ctx context.Context, stages []stage) error {
	pass, cancel := context.WithCancelCause(ctx)
	defer func() {
		cancel(nil)
		if a.etcdSupervised != nil {
			<-a.etcdSupervised
			a.etcdSupervised = nil
		}
	}()
	stopPetting := a.petDuringStartup(pass)
	defer stopPetting()
	for _, s := range stages {
		if s.name == "membership" {
			// From here on a recovery request ends the pass, whatever it
			// waits for.
			if req, ok := a.recoveryToResume(); ok {
				return &recoverNeeded{req: req}
			}
			go a.watchRecoveryRequest(pass, cancel)
		}
		a.setPhase(s.phase, s.name)
		if err := s.run(pass); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if r, ok := asRecover(context.Cause(pass)); ok {
				return r
			}
			if _, ok := asRejoin(err); ok {
				return err
			}
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	stopPetting()
	err := a.supervise(pass)
	if r, ok := asRecover(context.Cause(pass)); ok {
		return r
	}
	return err
}

func (a *Agent) resolveIdentity(ctx context.Context) error {
	a.setPhase(report.PhaseIdentity, "reading node identity from "+a.cfg.Node.Identity)
	id, err := a.opts.Identity.Identity(ctx)
	if err != nil {
		return err
	}
	a.id = id
	a.rec.Update(func(r *report.NodeReport) {
		r.Name, r.PrivateIP, r.Hostname = id.Name, id.PrivateIP.String(), id.Hostname
		r.InstanceID, r.AvailabilityZone = id.InstanceID, id.AvailabilityZone
		if id.PublicIP.IsValid() {
			r.PublicIP = id.PublicIP.String()
		}
	})
	a.log.Info("node identity", "name", id.Name, "ip", id.PrivateIP, "source", id.Source,
		"instance", id.InstanceID, "az", id.AvailabilityZone)
	return nil
}

func (a *Agent) ensureCertificates(ctx context.Context) error {
	a.setPhase(report.PhaseCertificates, "issuing certificates from "+a.cfg.PKI.CACert)
	ca, err := pki.LoadCA(a.cfg.PKI.CACert, a.cfg.PKI.CAKey, a.now())
	if err != nil {
		// No retry fixes a CA that cannot be used: a configuration error
		// (exit 78, systemd does not restart in a loop).
		fix := "ship the cluster's CA certificate and key (pki.caCert, pki.caKey) readable by the agent's user only"
		var perm *pki.KeyPermError
		if errors.As(err, &perm) {
			fix = perm.Fix()
		}
		return &config.Error{Problems: []config.Problem{{Field: "pki.caKey", Value: a.cfg.PKI.CAKey, Problem: err.Error(), Fix: fix}}}
	}
	a.ca = ca
	return a.refreshCertificates()
}

// refreshCertificates reissues what is due. A renewal needs no restart:
// etcd reads its certificate and key files at every handshake (TLSInfo's
// GetCertificate/GetClientCertificate in client/pkg/transport/listener.go),
// and the agent's own clients use pki.ReloadingClientTLS. etcd reads the CA
// bundle only at start.
func (a *Agent) refreshCertificates() error {
	certs, err := a.ca.EnsureNodeCerts(pki.NodeRequest{
		Dir: a.cfg.PKI.Dir, NodeIP: a.id.PrivateIP, Hostname: a.id.Hostname,
		Validity: a.cfg.PKI.Validity.D(), RenewBefore: a.cfg.PKI.RenewBefore.D(), Now: a.now(),
	})
	if err != nil {
		return err
	}
	a.certs = certs
	// Every leaf is issued by the signer now (EnsureNodeCerts reissues
	// those another CA issued).
	issuer := caIdentity(a.ca.Cert)
	var published []report.Cert
	for _, c := range certs.Certs {
		if c.Action != pki.ActionReused || c.Reason != "" {
			a.log.Info("certificate", "role", c.Role, "action", c.Action, "reason", c.Reason, "expires", c.NotAfter)
		}
		published = append(published, report.Cert{Role: c.Role, NotAfter: c.NotAfter, Issuer: issuer})
	}
	a.rec.Update(func(r *report.NodeReport) { r.Certs = published })
	return nil
}

// decideMembership is the membership stage: the membership job decides how
// the member starts (and a join hands over its client to the cluster).
func (a *Agent) decideMembership(ctx context.Context) error {
	// Connect to the container runtime while discovery waits for peers.
	go func() {
		if err := a.opts.Runtime.Prepare(ctx); err != nil {
			a.log.Debug("prepare etcd runtime", "err", err)
		}
	}()
	d, cli, err := a.members.Enter(ctx)
	if err != nil {
		return err
	}
	a.decision = d
	if cli != nil {
		a.cluster = cli
	}
	return nil
}

// specBase is the etcd configuration that does not depend on membership:
// the same mapping `config check` validates.
func (a *Agent) specBase() etcdconf.Spec {
	s := a.cfg.MemberSpec(a.id.Name, a.id.PrivateIP)
	if a.opts.Runtime != nil && a.opts.Runtime.Capabilities().RunsImage {
		s.Image = a.cfg.Etcd.Image // a changed image rolls out like a setting
	}
	return s
}

func (a *Agent) startEtcd(ctx context.Context) error {
	spec := a.specBase()
	spec.InitialCluster = a.decision.InitialCluster
	spec.InitialClusterState = a.decision.InitialClusterState
	spec.InitialClusterToken = a.decision.Token
	if err := spec.Validate(); err != nil {
		return &config.Error{Problems: []config.Problem{{Field: "etcd", Problem: err.Error(), Fix: "correct etcd.extraFlags or the ports"}}}
	}
	a.desired = spec
	spec = a.specToRun(spec)
	a.setEtcdSpec(spec)
	if err := a.waitRuntime(ctx); err != nil {
		return err
	}
	if a.decision.Path == membership.Bootstrap {
		// Before its etcd first starts, a founder records that it did: a
		// blank node finding this record never reuses the member's identity.
		if err := a.members.RecordStarted(ctx); err != nil {
			return err
		}
	}
	a.setPhase(report.PhaseStartingEtcd, "starting etcd ("+a.opts.Runtime.Name()+")")
	if err := os.MkdirAll(spec.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	a.beforeEtcdStart()
	action, err := a.opts.Runtime.Ensure(ctx, spec)
	if err != nil {
		if a.decision.Path == membership.Bootstrap {
			a.members.ForgetFailedStart(ctx)
		}
		return err
	}
	a.afterEtcdEnsure(action)
	a.writeAppliedSpec(spec)
	a.log.Info("etcd runtime", "runtime", a.opts.Runtime.Name(), "action", action)
	a.rec.Update(func(r *report.NodeReport) { r.ClientURL, r.PeerURL = spec.ClientURL(), spec.PeerURL() })
	supervised := make(chan struct{})
	a.etcdSupervised = supervised
	go func() {
		defer close(supervised)
		err := runtime.Supervise(ctx, a.opts.Runtime, spec, runtime.SuperviseOptions{Logger: a.log, OnEvent: a.runtimeEvent, Hold: a.holdEtcd, Spec: a.etcdSpec})
		if err != nil && ctx.Err() == nil {
			a.log.Error("etcd supervision ended", "err", err)
		}
	}()
	// Reloading: a renewed client certificate or trust bundle is used by
	// the next connection of this long-lived client.
	tlsCfg, err := pki.ReloadingClientTLS(a.cfg.PKI.Dir, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		return err
	}
	a.client, err = clientv3.New(clientv3.Config{
		Endpoints:   []string{spec.ClientURL()},
		TLS:         tlsCfg,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return fmt.Errorf("create etcd client: %w", err)
	}
	return nil
}

// holdEtcd stops etcd restarts once this node is leaving the cluster: a
// removed member must not come back.
func (a *Agent) holdEtcd() string {
	defer a.beforeEtcdStart()
	if _, left := sidefile.ReadLeaveMarker(a.cfg.Node.DataDir); left {
		return "this node is leaving the cluster (" + sidefile.LeaveMarkerPath(a.cfg.Node.DataDir) + ")"
	}
	if why, _ := a.inconsistent.Load().(string); why != "" {
		return why
	}
	return ""
}

// inconsistentData is etcd's message when its initial corruption check finds
// the local data differs from the peers'. Restarting cannot fix it (and an
// embedded etcd keeps its WAL locked after that failure), and which side is
// wrong needs a human: etcd is held stopped and the data left in place.
const inconsistentData = "found data inconsistency with peers"

func (a *Agent) runtimeEvent(ev runtime.Event) {
	if ev.Kind == runtime.EventEnsured {
		a.afterEtcdEnsure(ev.Action)
	}
	switch {
	case ev.Kind == runtime.EventExited && a.plannedRestart():
		a.plannedExit.Store(ev.Exit.String())
		a.log.Info("etcd stopped for a planned restart", "event", ev.String())
	case ev.Kind == runtime.EventEnsured && ev.Action == runtime.ActionAdopted,
		ev.Kind == runtime.EventStable:
		// Supervision found etcd running as expected: nothing to report.
		a.log.Debug("etcd runtime event", "event", ev.String())
	case strings.Contains(ev.String(), inconsistentData):
		why := "etcd's initial corruption check found this member's data inconsistent with its peers: etcd is held stopped; compare `etcd-agent status` hashes, then move " +
			a.cfg.Node.DataDir + " aside to let the node rejoin as a new member"
		a.inconsistent.Store(why)
		a.log.Error("etcd refused to start: data inconsistent with peers", "event", ev.String())
		a.rec.AddDecision(report.ActionDivergence, why)
	default:
		a.log.Warn("etcd runtime event", "event", ev.String())
		a.rec.AddDecision(report.ActionRuntime, ev.String())
	}
}

func (a *Agent) setPhase(p report.Phase, msg string) {
	a.rec.SetPhase(p, msg)
	if err := a.opts.Notifier.Status(msg); err != nil {
		a.log.Debug("sd_notify status", "err", err)
	}
	a.flush()
}

func (a *Agent) flush() {
	if err := a.rec.Flush(a.cfg.Agent.StatusFile); err != nil {
		a.log.Warn("publish status", "file", a.cfg.Agent.StatusFile, "err", err)
	}
}

func (a *Agent) shutdown(runErr error) {
	msg := "stopping"
	if runErr != nil {
		msg = "stopping after error: " + runErr.Error()
		a.rec.SetError(runErr)
	}
	_ = a.opts.Notifier.Stopping(msg)
	a.rec.SetPhase(report.PhaseStopping, msg)
	a.flush()
	if a.client != nil {
		_ = a.client.Close()
	}
	if a.cluster != nil {
		_ = a.cluster.Close()
	}
	if a.opts.StopEtcdOnExit || a.opts.Runtime.Capabilities().InProcess {
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Podman.StopTimeout.D()+10*time.Second)
		defer cancel()
		if err := a.opts.Runtime.Stop(ctx); err != nil {
			a.log.Warn("stop etcd", "err", err)
		}
	}
	a.rec.SetPhase(report.PhaseStopped, msg)
	a.flush()
}

// LeftError is returned by Run on a node that has left the cluster.
type LeftError struct {
	Marker string
	Detail string
}

func (e *LeftError) Error() string {
	return fmt.Sprintf("this node left the cluster (%s): it will not start etcd or join again; delete %s to let it join as a new member",
		strings.TrimSpace(e.Detail), e.Marker)
}

// leftError is a LeftError when this node left, or is leaving, the cluster
// (nil otherwise).
func (a *Agent) leftError() error {
	m, ok := sidefile.ReadLeaveMarker(a.cfg.Node.DataDir)
	if !ok {
		return nil
	}
	return &LeftError{Marker: sidefile.LeaveMarkerPath(a.cfg.Node.DataDir), Detail: m.String()}
}

// Leave removes this node's member from the cluster (scale-down,
// decommission) and wipes its data only after the removal is committed
// (membership.Job.Leave); progress is told each step. Options.Runtime stops
// the local etcd; nil when a running agent owns it (it stops by itself on
// removal). An interrupted Leave can be run again: it finishes what is left.
func (a *Agent) Leave(ctx context.Context, progress func(string)) error {
	if err := a.resolveIdentity(ctx); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	return a.members.Leave(ctx, progress)
}

type nopNotifier struct{}

func (nopNotifier) Ready(string) error    { return nil }
func (nopNotifier) Status(string) error   { return nil }
func (nopNotifier) Watchdog() error       { return nil }
func (nopNotifier) Stopping(string) error { return nil }

// probe asks the local member whether it is healthy, a voter and caught up.
func (a *Agent) probe(ctx context.Context) health.Health {
	return health.Probe(ctx, health.Target{Local: a.client, Cluster: a.clusterClient, Name: a.spec.Name,
		ClientURL: a.spec.ClientURL(), Size: a.cfg.Cluster.Size, Quota: int64(a.cfg.Etcd.QuotaBackendBytes)})
}
