package fault_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/internal/asgtest"
	"github.com/etcd-agent/etcd-agent/internal/imdssim"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
)

// TestInstanceRefreshMakeBeforeBreak: one step of an instance refresh
// under a writer. A replacement (node 4, new address) boots while the
// 3-voter cluster is full: it waits as a standby and completes its launch
// hook (the refresh goes on). Then the group terminates node 1 (its IMDS
// simulator says Terminated, its terminate hook pending): node 1 offers
// its seat, node 4 joins as a learner and is promoted, and only then does
// node 1's member leave; its agent completes the terminate hook. The
// healthy voters, sampled throughout, never drop below 3. End: 3 voters
// (2, 3, 4), the usual proof.
func TestInstanceRefreshMakeBeforeBreak(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.useV3Discovery(3)
	const (
		group         = "etcd-nodes"
		launchHook    = "etcd-launch"
		terminateHook = "etcd-terminate"
	)
	instance := func(i int) string { return fmt.Sprintf("i-000000000000000%d", i) }
	api := asgtest.Start(t, group, []string{instance(1), instance(2), instance(3), instance(4)}, launchHook, terminateHook)
	sims := map[int]*imdssim.Sim{}
	byIP := map[string]int{}
	for i := 1; i <= 4; i++ {
		sims[i] = imdssim.Start(t, imdssim.Options{Mode: imdssim.Events, IP: c.ip(i), InstanceID: instance(i)})
		byIP[c.ip(i)] = i
	}
	c.configure = func(cfg *config.Config) {
		i := byIP[cfg.Node.IP]
		cfg.Fleet = config.Fleet{Notices: "imds", IMDSEndpoint: sims[i].Endpoint, Interval: config.Duration(time.Second),
			AutoScaling: config.AutoScaling{Group: group, TerminateHook: terminateHook, Region: asgtest.Region, Endpoint: api.URL,
				HeartbeatInterval: config.Duration(time.Second), ReplacementWait: config.Duration(2 * time.Minute)}}
		if i == 4 {
			cfg.Fleet.AutoScaling.LaunchHook = launchHook
		}
	}
	c.env = []string{"AWS_ACCESS_KEY_ID=" + asgtest.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + asgtest.SecretAccessKey, "AWS_EC2_METADATA_DISABLED=true"}

	start := time.Now()
	at := func() string { return fmt.Sprintf("%6.1fs", time.Since(start).Seconds()) }
	var timeline []string
	mark := func(format string, args ...any) {
		line := at() + " " + fmt.Sprintf(format, args...)
		timeline = append(timeline, line)
		t.Log(line)
	}

	n := c.form(3)
	cli := c.client(1, 2, 3)
	c.waitMembers(cli, time.Minute, 1, 2, 3)
	mark("3 voters ready")
	w := lintest.Start(t, cli, 2)

	// Sample the healthy voters throughout: the member list, and a status
	// answer from each voter in it.
	sampleCtx, stopSampling := context.WithCancel(context.Background())
	var sampleWG sync.WaitGroup
	var smu sync.Mutex
	minHealthy, maxVoters, samples := 99, 0, 0
	var low []string
	watch := c.client(1, 2, 3, 4)
	sampleWG.Go(func() {
		for sampleCtx.Err() == nil {
			ctx, cancel := context.WithTimeout(sampleCtx, 2*time.Second)
			ml, err := watch.MemberList(ctx)
			if err == nil {
				voters, healthy := 0, 0
				for _, m := range ml.Members {
					if m.IsLearner || len(m.ClientURLs) == 0 {
						continue
					}
					voters++
					if _, err := watch.Status(ctx, m.ClientURLs[0]); err == nil {
						healthy++
					}
				}
				if sampleCtx.Err() != nil {
					// Stopped mid-sample: its Status calls failed on
					// the cancel, not on the members (a CI run recorded
					// "0 healthy of 3 voters" here).
					cancel()
					break
				}
				smu.Lock()
				samples++
				minHealthy, maxVoters = min(minHealthy, healthy), max(maxVoters, voters)
				if healthy < 3 {
					low = append(low, fmt.Sprintf("%s %d healthy of %d voters", at(), healthy, voters))
				}
				smu.Unlock()
			}
			cancel()
			select {
			case <-sampleCtx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	t.Cleanup(func() { stopSampling(); sampleWG.Wait() })

	// The replacement boots first (MaxHealthyPercentage 200): a standby.
	n4 := c.node(4)
	n4.start()
	deadline := time.Now().Add(time.Minute)
	for n4.report().Phase != report.PhaseStandby || api.Completed(launchHook, instance(4)) != "CONTINUE" {
		if time.Now().After(deadline) {
			t.Fatalf("node 4 is not a standby with its launch hook completed (phase %s, launch hook %q)\n%s",
				n4.report().Phase, api.Completed(launchHook, instance(4)), n4.describe())
		}
		time.Sleep(200 * time.Millisecond)
	}
	mark("node 4 waits as a standby and completed its launch hook: %s", n4.report().Message)

	// The group terminates node 1.
	old := sims[1]
	old.Stop()
	sims[1] = imdssim.Start(t, imdssim.Options{Mode: imdssim.ASGLifecycle, IP: c.ip(1), Port: old.Port, InstanceID: instance(1)})
	terminatedAt := time.Now()
	mark("node 1's IMDS: target lifecycle state Terminated")
	n4.waitReady(joinTimeout)
	mark("node 4 ready: promoted to voter")
	if code, err := n[1].proc.wait(2 * time.Minute); err != nil || code != exitConfig {
		t.Fatalf("node 1's agent after Terminated: exit %d, %v (want %d: left)\n%s", code, err, exitConfig, n[1].describe())
	}
	mark("node 1's agent exited: left")
	st := w.StallBetween(terminatedAt, time.Now())
	mark("writer from Terminated to the exit: longest gap between acknowledged writes %s, slowest write %s (%d writes)",
		st.Gap.Round(time.Millisecond), st.Slowest.Round(time.Millisecond), st.Puts)
	if got := api.Completed(terminateHook, instance(1)); got != "CONTINUE" {
		t.Errorf("node 1's terminate hook completed with %q, want CONTINUE; calls %+v", got, api.Calls())
	} else {
		mark("node 1 completed terminate hook %s with CONTINUE (%d heartbeats before)", terminateHook, api.Count("RecordLifecycleActionHeartbeat", terminateHook, instance(1)))
	}
	logb, _ := os.ReadFile(n4.proc.log)
	if !strings.Contains(string(logb), "take its seat before it leaves") {
		t.Errorf("node 4 did not join on node 1's seat offer:\n%s", n4.proc.tail(40))
	}
	if r := api.Rejected(); len(r) > 0 {
		t.Errorf("the API stand-in refused requests: %v", r)
	}
	cli.SetEndpoints(c.endpoints(2, 3, 4)...)
	c.proof(w, cli, 2, 3, 4)
	mark("proof on nodes 2, 3, 4")
	stopSampling()
	sampleWG.Wait()
	smu.Lock()
	defer smu.Unlock()
	t.Logf("timeline:\n%s", strings.Join(timeline, "\n"))
	t.Logf("%d samples: at least %d healthy voters throughout, at most %d voters", samples, minHealthy, maxVoters)
	if len(low) > 0 {
		t.Errorf("fewer than 3 healthy voters in %d of %d samples (make-before-break keeps 3):\n%s", len(low), samples, strings.Join(low[:min(len(low), 10)], "\n"))
	}
	if maxVoters != 4 {
		t.Errorf("at most %d voters seen; the replacement must be a voter before node 1 leaves (4 voters)", maxVoters)
	}
}
