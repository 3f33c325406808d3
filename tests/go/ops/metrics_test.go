package ops

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"tally.local/tests/go/cluster"
)

// The metrics etcd's dashboards and alerts use, with their types.
var wantMetrics = map[string]dto.MetricType{
	"etcd_server_has_leader":                    dto.MetricType_GAUGE,
	"etcd_server_is_leader":                     dto.MetricType_GAUGE,
	"etcd_server_leader_changes_seen_total":     dto.MetricType_COUNTER,
	"etcd_server_proposals_committed_total":     dto.MetricType_GAUGE,
	"etcd_server_proposals_applied_total":       dto.MetricType_GAUGE,
	"etcd_server_proposals_pending":             dto.MetricType_GAUGE,
	"etcd_server_proposals_failed_total":        dto.MetricType_COUNTER,
	"etcd_server_quota_backend_bytes":           dto.MetricType_GAUGE,
	"etcd_disk_wal_fsync_duration_seconds":      dto.MetricType_HISTOGRAM,
	"etcd_disk_backend_commit_duration_seconds": dto.MetricType_HISTOGRAM,
	"etcd_mvcc_db_total_size_in_bytes":          dto.MetricType_GAUGE,
	"etcd_mvcc_db_total_size_in_use_in_bytes":   dto.MetricType_GAUGE,
	"etcd_debugging_mvcc_keys_total":            dto.MetricType_GAUGE,
	"grpc_server_started_total":                 dto.MetricType_COUNTER,
	"grpc_server_handled_total":                 dto.MetricType_COUNTER,
	"process_resident_memory_bytes":             dto.MetricType_GAUGE,
	"etcd_network_peer_sent_bytes_total":        dto.MetricType_COUNTER,
	"etcd_network_peer_received_bytes_total":    dto.MetricType_COUNTER,
}

// Round trips to each peer, timed on the leader (etcd probes every peer every few seconds;
// Tally times the leader's heartbeats): present once the cluster has run a moment.

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body, ctype := get(t, url)
	if code != 200 || !strings.HasPrefix(ctype, "text/plain; version=0.0.4") {
		t.Fatalf("GET %s: %d %q", url, code, ctype)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	cluster.NoErr(t, "parsing /metrics as Prometheus text", err)
	return families
}

// value is the sum over the family's samples whose labels include `labels` (a counter's or a
// gauge's value, a histogram's count).
func value(f *dto.MetricFamily, labels map[string]string) float64 {
	total := 0.0
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range labels {
			match = match && have[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}

func TestMetricsHaveEtcdsNamesAndMoveUnderLoad(t *testing.T) {
	ctx := context.Background()
	leader, err := clus.Leader(ctx)
	cluster.NoErr(t, "leader", err)
	m := clus.Members[leader]
	url := m.ClientURL() + "/metrics"
	before := scrape(t, url)
	for name, typ := range wantMetrics {
		f, ok := before[name]
		if !ok {
			t.Errorf("/metrics has no %s", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("%s is a %v, want a %v", name, f.GetType(), typ)
		}
	}
	if t.Failed() {
		return
	}
	if v := value(before["etcd_server_is_leader"], nil); v != 1 {
		t.Errorf("etcd_server_is_leader on the leader = %v", v)
	}
	if v := value(before["etcd_server_has_leader"], nil); v != 1 {
		t.Errorf("etcd_server_has_leader = %v", v)
	}
	// Every method starts at zero for every code, as go-grpc-prometheus initializes them.
	if v := len(before["grpc_server_handled_total"].GetMetric()); v < 17*20 {
		t.Errorf("grpc_server_handled_total has %d series, want every method x 17 codes", v)
	}

	const puts = 100
	c := clus.Client(t, m.Endpoint())
	prefix := cluster.Prefix(t)
	for i := 0; i < puts; i++ {
		_, err := c.Put(ctx, fmt.Sprintf("%s/%d", prefix, i), "v")
		cluster.NoErr(t, "put", err)
	}
	after := scrape(t, url)
	putOK := map[string]string{"grpc_method": "Put", "grpc_service": "etcdserverpb.KV", "grpc_code": "OK", "grpc_type": "unary"}
	grew := func(name string, labels map[string]string, by float64) {
		t.Helper()
		b, a := value(before[name], labels), value(after[name], labels)
		if a-b < by {
			t.Errorf("%s %v went from %v to %v after %d puts, want +%v", name, labels, b, a, puts, by)
		}
	}
	grew("grpc_server_started_total", map[string]string{"grpc_method": "Put"}, puts)
	grew("grpc_server_handled_total", putOK, puts)
	grew("etcd_server_proposals_committed_total", nil, puts)
	grew("etcd_server_proposals_applied_total", nil, puts)
	grew("etcd_disk_wal_fsync_duration_seconds", nil, 1)
	grew("etcd_debugging_mvcc_keys_total", nil, puts)
	// etcd's size moves by whole pages, at its next backend commit: only ask for one.
	if v := value(after["etcd_mvcc_db_total_size_in_bytes"], nil); v <= 0 {
		t.Errorf("etcd_mvcc_db_total_size_in_bytes = %v after %d puts", v, puts)
	}
	// The leader replicates each put to both followers: bytes go out to each, and come back.
	// Each peer has its own series, by member id in hex (etcd may add one more, e.g. before it
	// knew a sender).
	for f, label := range map[string]string{"etcd_network_peer_sent_bytes_total": "To", "etcd_network_peer_received_bytes_total": "From"} {
		for i, peer := range clus.Members {
			if i == leader {
				continue
			}
			id := map[string]string{label: fmt.Sprintf("%x", peer.ID)}
			if v := value(after[f], id); v <= 0 {
				t.Errorf("%s%v = %v, want bytes", f, id, v)
			}
		}
		grew(f, nil, puts)
	}
	cluster.Eventually(t, 10*time.Second, "round-trip histograms for both peers", func() error {
		rtt := scrape(t, url)["etcd_network_peer_round_trip_time_seconds"]
		if rtt.GetType() != dto.MetricType_HISTOGRAM || len(rtt.GetMetric()) != 2 || value(rtt, nil) == 0 {
			return fmt.Errorf("etcd_network_peer_round_trip_time_seconds: %v", rtt)
		}
		return nil
	})
}
