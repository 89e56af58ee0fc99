// Command metal-sdk drives a Metal API endpoint with equinix-sdk-go's own metalv1 client, so that
// the vendor's generated models (strict decoding, oneOf matching, enum checks) judge the shapes
// the endpoint answers with. libs/testing runs it against FakeMetalApi (test/metal-api.test.ts).
//
// It creates devices with tags, lists them by tag following every page, waits for one to become
// active, renames it, reserves a public IPv4 address and assigns it, lists reservations and
// assignments, deletes the device (force_delete) and the reservation, and prints a JSON summary
// on stdout. Any unexpected SDK error ends it with one line on stderr and exit status 1.
//
// Usage: METAL_AUTH_TOKEN=… metal-sdk -url http://127.0.0.1:PORT/metal/v1 -project <uuid>
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	metal "github.com/equinix/equinix-sdk-go/services/metalv1"
)

type options struct {
	url, project, metro, plan, os, tag string
	devices                            int
	timeout                            time.Duration
}

// summary is what the test asserts; every count comes from an SDK response.
type summary struct {
	Created            int      `json:"created"`
	CreatedStates      []string `json:"createdStates"`
	AddressesAtCreate  int      `json:"addressesAtCreate"`
	RejectedStatus     int      `json:"rejectedStatus"`
	RejectedErrors     []string `json:"rejectedErrors"`
	ListedByTag        int      `json:"listedByTag"`
	ListedByTagPerPage int      `json:"listedByTagPerPage5"`
	OutsiderListed     bool     `json:"outsiderListed"`
	Device             string   `json:"device"`
	ActiveAfterPolls   int      `json:"activeAfterPolls"`
	Hostname           string   `json:"hostname"`
	Reservation        string   `json:"reservation"`
	ReservationAddress string   `json:"reservationAddress"`
	ReservationState   string   `json:"reservationState"`
	Assignment         string   `json:"assignment"`
	AssignedAddress    string   `json:"assignedAddress"`
	ReservationsListed int      `json:"reservationsListed"`
	AssignmentsOnRes   int      `json:"assignmentsOnReservation"`
	DeviceAddresses    int      `json:"deviceAddresses"`
	LookedUpKinds      []string `json:"lookedUpKinds"`
	DeletedDevice      string   `json:"deletedDevice"`
	ReservationGone    int      `json:"reservationGoneStatus"`
}

func main() {
	o := options{}
	flag.StringVar(&o.url, "url", "", "Metal API base URL, e.g. http://127.0.0.1:PORT/metal/v1")
	flag.StringVar(&o.project, "project", "", "project UUID")
	flag.StringVar(&o.metro, "metro", "da", "metro code for devices and the reservation")
	flag.StringVar(&o.plan, "plan", "c3.small.x86", "device plan slug")
	flag.StringVar(&o.os, "os", "ubuntu_22_04", "operating system slug")
	flag.StringVar(&o.tag, "tag", "knet-sdk-check", "tag put on the devices and listed by")
	flag.IntVar(&o.devices, "devices", 12, "how many devices to create")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Second, "time limit for the whole run")
	flag.Parse()
	token := os.Getenv("METAL_AUTH_TOKEN")
	if o.url == "" || o.project == "" || token == "" || o.devices < 1 {
		fmt.Fprintln(os.Stderr, "metal-sdk: need -url, -project, -devices >= 1 and METAL_AUTH_TOKEN in the environment")
		os.Exit(2)
	}
	s, err := run(o, token)
	if err != nil {
		fmt.Fprintf(os.Stderr, "metal-sdk: %v\n", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(s)
	fmt.Println(string(out))
}

func run(o options, token string) (*summary, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	// The SDK's own API-key mechanism: the spec's security scheme x_auth_token → X-Auth-Token.
	ctx = context.WithValue(ctx, metal.ContextAPIKeys, map[string]metal.APIKey{"x_auth_token": {Key: token}})
	cfg := metal.NewConfiguration()
	cfg.Servers = metal.ServerConfigurations{{URL: o.url}}
	cfg.UserAgent = "knet-metal-sdk-check " + cfg.UserAgent
	c := metal.NewAPIClient(cfg)
	s := &summary{}

	var ids []string
	for i := 0; i < o.devices; i++ {
		d, _, err := createDevice(ctx, c, o, fmt.Sprintf("sdk-%02d", i), []string{o.tag, fmt.Sprintf("index:%d", i)})
		if err != nil {
			return nil, sdkError("createDevice", err)
		}
		ids = append(ids, d.GetId())
		s.CreatedStates = appendOnce(s.CreatedStates, string(d.GetState()))
		s.AddressesAtCreate = len(d.GetIpAddresses())
	}
	s.Created = len(ids)
	if _, _, err := createDevice(ctx, c, o, "sdk-outsider", []string{"someone-else"}); err != nil {
		return nil, sdkError("createDevice sdk-outsider", err)
	}

	bad := o
	bad.plan = "no.such.plan"
	_, status, err := createDevice(ctx, c, bad, "sdk-rejected", []string{o.tag})
	var apiErr *metal.GenericOpenAPIError
	if !errors.As(err, &apiErr) {
		return nil, fmt.Errorf("createDevice with an unknown plan: want an API error, got %v", err)
	}
	model, ok := apiErr.Model().(metal.Error)
	if !ok {
		return nil, fmt.Errorf("createDevice with an unknown plan: the error body did not decode as the spec's Error: %s", apiErr.Body())
	}
	s.RejectedErrors = model.GetErrors()
	s.RejectedStatus = status

	all, err := c.DevicesApi.FindProjectDevices(ctx, o.project).Tag(o.tag).ExecuteWithPagination()
	if err != nil {
		return nil, sdkError("findProjectDevices", err)
	}
	s.ListedByTag = len(all.Devices)
	for _, d := range all.Devices {
		if !contains(d.GetTags(), o.tag) {
			s.OutsiderListed = true
		}
	}
	small, err := c.DevicesApi.FindProjectDevices(ctx, o.project).Tag(o.tag).PerPage(5).ExecuteWithPagination()
	if err != nil {
		return nil, sdkError("findProjectDevices per_page=5", err)
	}
	s.ListedByTagPerPage = len(small.Devices)

	s.Device = ids[0]
	polls, err := waitActive(ctx, c, s.Device)
	if err != nil {
		return nil, err
	}
	s.ActiveAfterPolls = polls

	upd := metal.NewDeviceUpdateInput()
	upd.SetHostname("sdk-renamed")
	d, _, err := c.DevicesApi.UpdateDevice(ctx, s.Device).DeviceUpdateInput(*upd).Execute()
	if err != nil {
		return nil, sdkError("updateDevice", err)
	}
	s.Hostname = d.GetHostname()

	req := metal.NewIPReservationRequestInput(1, "public_ipv4")
	req.SetMetro(o.metro)
	req.SetTags([]string{o.tag, "eip"})
	req.SetFailOnApprovalRequired(true)
	created, _, err := c.IPAddressesApi.RequestIPReservation(ctx, o.project).
		RequestIPReservationRequest(metal.IPReservationRequestInputAsRequestIPReservationRequest(req)).Execute()
	if err != nil {
		return nil, sdkError("requestIPReservation", err)
	}
	if created.IPReservation == nil {
		return nil, fmt.Errorf("requestIPReservation: the answer did not decode as an IPReservation")
	}
	res := created.IPReservation
	s.Reservation, s.ReservationAddress, s.ReservationState = res.GetId(), res.GetAddress(), res.GetState()

	assignment, _, err := c.DevicesApi.CreateIPAssignment(ctx, s.Device).
		IPAssignmentInput(*metal.NewIPAssignmentInput(fmt.Sprintf("%s/%d", res.GetAddress(), res.GetCidr()))).Execute()
	if err != nil {
		return nil, sdkError("createIPAssignment", err)
	}
	s.Assignment, s.AssignedAddress = assignment.GetId(), assignment.GetAddress()

	list, err := c.IPAddressesApi.FindIPReservations(ctx, o.project).
		Types([]metal.FindIPReservationsTypesParameterInner{metal.FINDIPRESERVATIONSTYPESPARAMETERINNER_PUBLIC_IPV4}).
		ExecuteWithPagination()
	if err != nil {
		return nil, sdkError("findIPReservations", err)
	}
	s.ReservationsListed = len(list.IpAddresses)
	for _, r := range list.IpAddresses {
		if r.IPReservation != nil && r.IPReservation.GetId() == s.Reservation {
			s.AssignmentsOnRes = len(r.IPReservation.GetAssignments())
		}
	}
	onDevice, _, err := c.DevicesApi.FindIPAssignments(ctx, s.Device).Execute()
	if err != nil {
		return nil, sdkError("findIPAssignments", err)
	}
	s.DeviceAddresses = len(onDevice.IpAddresses)

	for _, id := range []string{s.Reservation, s.Assignment} {
		found, _, err := c.IPAddressesApi.FindIPAddressById(ctx, id).Execute()
		if err != nil {
			return nil, sdkError("findIPAddressById", err)
		}
		s.LookedUpKinds = append(s.LookedUpKinds, fmt.Sprintf("%T", found.GetActualInstance()))
	}

	if _, err := c.DevicesApi.DeleteDevice(ctx, s.Device).ForceDelete(true).Execute(); err != nil {
		return nil, sdkError("deleteDevice", err)
	}
	s.DeletedDevice = s.Device
	if _, err := c.IPAddressesApi.DeleteIPAddress(ctx, s.Reservation).Execute(); err != nil {
		return nil, sdkError("deleteIPAddress", err)
	}
	_, resp, err := c.IPAddressesApi.FindIPAddressById(ctx, s.Reservation).Execute()
	if s.ReservationGone = statusCode(resp); s.ReservationGone != http.StatusNotFound {
		return nil, fmt.Errorf("findIPAddressById after delete: want 404, got %v", err)
	}
	return s, nil
}

// createDevice asks for one device in the metro; it returns the HTTP status with the SDK's answer.
func createDevice(ctx context.Context, c *metal.APIClient, o options, hostname string, tags []string) (*metal.Device, int, error) {
	in := metal.NewDeviceCreateInMetroInput(o.metro, o.os, o.plan)
	in.SetHostname(hostname)
	in.SetTags(tags)
	in.SetBillingCycle(metal.DEVICECREATEINPUTBILLINGCYCLE_HOURLY)
	in.SetUserdata("#cloud-config\n{}\n")
	d, resp, err := c.DevicesApi.CreateDevice(ctx, o.project).
		CreateDeviceRequest(metal.DeviceCreateInMetroInputAsCreateDeviceRequest(in)).Execute()
	return d, statusCode(resp), err
}

// waitActive polls the device every 50 ms until it is active; it returns how many GETs that took.
func waitActive(ctx context.Context, c *metal.APIClient, id string) (int, error) {
	for polls := 1; ; polls++ {
		d, _, err := c.DevicesApi.FindDeviceById(ctx, id).Execute()
		if err != nil {
			return polls, sdkError("findDeviceById", err)
		}
		switch d.GetState() {
		case metal.DEVICESTATE_ACTIVE:
			return polls, nil
		case metal.DEVICESTATE_FAILED:
			return polls, fmt.Errorf("device %s failed to provision", id)
		}
		select {
		case <-ctx.Done():
			return polls, fmt.Errorf("device %s not active (still %s) before the time limit", id, d.GetState())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// sdkError is one line: the operation, the SDK's reason (an HTTP status or a decoding error) and
// the start of the body it got (never the token).
func sdkError(op string, err error) error {
	var apiErr *metal.GenericOpenAPIError
	if !errors.As(err, &apiErr) {
		return fmt.Errorf("%s: %w", op, err)
	}
	body := strings.Join(strings.Fields(string(apiErr.Body())), " ")
	if len(body) > 300 {
		body = body[:300] + "…"
	}
	return fmt.Errorf("%s: %v: %s", op, apiErr.Error(), body)
}

// statusCode is the response's HTTP status, 0 when there was no response.
func statusCode(resp *http.Response) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func appendOnce(list []string, s string) []string {
	if contains(list, s) {
		return list
	}
	return append(list, s)
}
