package cutover

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/routes/wire"
	"github.com/switchyard/switchyard/routes/zkstore"
)

// RouteServers is the Observer of the route servers registered in a
// store: each one's /status, all asked at once.
type RouteServers struct{ Store *zkstore.Store }

// Observe lists the registered route servers and asks each for its
// status within timeout.
func (o RouteServers) Observe(ctx context.Context, timeout time.Duration) (Observation, error) {
	rss, err := o.Store.RouteServers(ctx)
	if err != nil {
		return Observation{}, err
	}
	obs := Observation{RouteServers: len(rss)}
	statuses := make([]*wire.Status, len(rss))
	client := &http.Client{Timeout: timeout}
	var wg sync.WaitGroup
	for i, rs := range rss {
		if rs.Problem != "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], _ = FetchStatus(ctx, client, rs.URL)
		}()
	}
	wg.Wait()
	for i, st := range statuses {
		if st == nil {
			obs.Unreachable = append(obs.Unreachable, rss[i].Name)
			continue
		}
		obs.Statuses = append(obs.Statuses, *st)
	}
	return obs, nil
}

// FetchStatus reads a route server's status document (wire.PathStatus)
// from its base URL.
func FetchStatus(ctx context.Context, client *http.Client, base string) (*wire.Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+wire.PathStatus, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", wire.PathStatus, resp.Status)
	}
	var st wire.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("GET %s: bad JSON: %v", wire.PathStatus, err)
	}
	return &st, nil
}
